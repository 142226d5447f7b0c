"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 03:26:33.853727
"""
from alembic import op
import sqlalchemy as sa
import tierup.store.types


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('programs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('current_version', sa.Integer(), nullable=False),
    sa.Column('created_at', tierup.store.types.UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_table('members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_id', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=True),
    sa.Column('birthday', sa.Date(), nullable=True),
    sa.Column('phone', sa.String(length=40), nullable=True),
    sa.Column('referral_code', sa.String(length=16), nullable=False),
    sa.Column('referred_by_id', sa.Integer(), nullable=True),
    sa.Column('joined_at', tierup.store.types.UtcDateTime(), nullable=False),
    sa.Column('tier_code', sa.String(length=40), nullable=False),
    sa.Column('tier_since', tierup.store.types.UtcDateTime(), nullable=False),
    sa.Column('tier_valid_until', tierup.store.types.UtcDateTime(), nullable=True),
    sa.Column('growth_value', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ),
    sa.ForeignKeyConstraint(['referred_by_id'], ['members.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('program_id', 'external_id'),
    sa.UniqueConstraint('referral_code')
    )
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.create_index('ix_members_program_tier', ['program_id', 'tier_code'], unique=False)
        batch_op.create_index('ix_members_tier_valid_until', ['program_id', 'tier_valid_until'], unique=False)

    op.create_table('program_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('definition', sa.Text(), nullable=False),
    sa.Column('published_at', tierup.store.types.UtcDateTime(), nullable=False),
    sa.Column('published_by', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('program_id', 'version')
    )
    op.create_table('reward_stock',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_id', sa.Integer(), nullable=False),
    sa.Column('reward_code', sa.String(length=40), nullable=False),
    sa.Column('remaining', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('program_id', 'reward_code')
    )
    op.create_table('member_badges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('earned_at', tierup.store.types.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('member_id', 'code')
    )
    op.create_table('notifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('sent_at', tierup.store.types.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('member_id', 'kind', 'key')
    )
    op.create_table('quest_passes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('quest_code', sa.String(length=40), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('passed_at', tierup.store.types.UtcDateTime(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('growth_value', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('member_id', 'quest_code', 'level')
    )
    op.create_table('reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_id', sa.Integer(), nullable=False),
    sa.Column('program_version', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=True),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('amount_fen', sa.BigInteger(), nullable=True),
    sa.Column('points', sa.Integer(), nullable=True),
    sa.Column('with_photos', sa.Boolean(), nullable=True),
    sa.Column('quantity', sa.BigInteger(), nullable=True),
    sa.Column('occurred_at', tierup.store.types.UtcDateTime(), nullable=False),
    sa.Column('received_at', tierup.store.types.UtcDateTime(), nullable=False),
    sa.Column('payload_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ),
    sa.ForeignKeyConstraint(['order_id'], ['reports.id'], ),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('program_id', 'kind', 'external_id', name='uq_reports_program_kind_external_id')
    )
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.create_index('ix_reports_member_kind_occurred', ['member_id', 'kind', 'occurred_at'], unique=False)
        batch_op.create_index('ix_reports_order', ['order_id'], unique=False)

    op.create_table('rfm_scores',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('as_of', tierup.store.types.UtcDateTime(), nullable=False),
    sa.Column('last_order_at', tierup.store.types.UtcDateTime(), nullable=True),
    sa.Column('frequency', sa.Integer(), nullable=False),
    sa.Column('monetary_fen', sa.BigInteger(), nullable=False),
    sa.Column('r', sa.Integer(), nullable=False),
    sa.Column('f', sa.Integer(), nullable=False),
    sa.Column('m', sa.Integer(), nullable=False),
    sa.Column('segment', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('member_id')
    )
    with op.batch_alter_table('rfm_scores', schema=None) as batch_op:
        batch_op.create_index('ix_rfm_scores_program_segment', ['program_id', 'segment'], unique=False)

    op.create_table('task_completions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('task_code', sa.String(length=40), nullable=False),
    sa.Column('period_key', sa.String(length=12), nullable=False),
    sa.Column('completed_at', tierup.store.types.UtcDateTime(), nullable=False),
    sa.Column('claimed_at', tierup.store.types.UtcDateTime(), nullable=True),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('growth_value', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('member_id', 'task_code', 'period_key')
    )
    op.create_table('coupons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('template_code', sa.String(length=40), nullable=False),
    sa.Column('code', sa.String(length=24), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('issued_at', tierup.store.types.UtcDateTime(), nullable=False),
    sa.Column('valid_from', tierup.store.types.UtcDateTime(), nullable=False),
    sa.Column('valid_until', tierup.store.types.UtcDateTime(), nullable=False),
    sa.Column('source', sa.String(length=40), nullable=False),
    sa.Column('used_at', tierup.store.types.UtcDateTime(), nullable=True),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ),
    sa.ForeignKeyConstraint(['order_id'], ['reports.id'], ),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    with op.batch_alter_table('coupons', schema=None) as batch_op:
        batch_op.create_index('ix_coupons_member_status', ['member_id', 'status', 'valid_until'], unique=False)

    op.create_table('points_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('balance_after', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('occurred_at', tierup.store.types.UtcDateTime(), nullable=False),
    sa.Column('expires_at', tierup.store.types.UtcDateTime(), nullable=True),
    sa.Column('report_id', sa.Integer(), nullable=True),
    sa.Column('shortfall', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('points_entries', schema=None) as batch_op:
        batch_op.create_index('ix_points_entries_member', ['member_id', 'id'], unique=False)
        batch_op.create_index('ix_points_entries_member_kind_occurred', ['member_id', 'kind', 'occurred_at'], unique=False)
        batch_op.create_index('ix_points_entries_report', ['report_id'], unique=False)

    op.create_table('tier_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('from_tier', sa.String(length=40), nullable=True),
    sa.Column('to_tier', sa.String(length=40), nullable=False),
    sa.Column('changed_at', tierup.store.types.UtcDateTime(), nullable=False),
    sa.Column('valid_until', tierup.store.types.UtcDateTime(), nullable=True),
    sa.Column('reason', sa.String(length=40), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('tier_changes', schema=None) as batch_op:
        batch_op.create_index('ix_tier_changes_member', ['member_id', 'id'], unique=False)

    op.create_table('benefit_claims',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('benefit_code', sa.String(length=40), nullable=False),
    sa.Column('period_key', sa.String(length=12), nullable=False),
    sa.Column('claimed_at', tierup.store.types.UtcDateTime(), nullable=False),
    sa.Column('coupon_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['coupon_id'], ['coupons.id'], ),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('benefit_claims', schema=None) as batch_op:
        batch_op.create_index('ix_benefit_claims_member', ['member_id', 'benefit_code', 'period_key'], unique=False)
        batch_op.create_index('ix_benefit_claims_program', ['program_id', 'benefit_code'], unique=False)

    op.create_table('lot_draws',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('lot_entry_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['points_entries.id'], ),
    sa.ForeignKeyConstraint(['lot_entry_id'], ['points_entries.id'], ),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('lot_draws', schema=None) as batch_op:
        batch_op.create_index('ix_lot_draws_lot', ['lot_entry_id'], unique=False)
        batch_op.create_index('ix_lot_draws_member', ['member_id'], unique=False)

    op.create_table('redemptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('reward_code', sa.String(length=40), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('redeemed_at', tierup.store.types.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['points_entries.id'], ),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('redemptions', schema=None) as batch_op:
        batch_op.create_index('ix_redemptions_member', ['member_id', 'reward_code'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('redemptions', schema=None) as batch_op:
        batch_op.drop_index('ix_redemptions_member')

    op.drop_table('redemptions')
    with op.batch_alter_table('lot_draws', schema=None) as batch_op:
        batch_op.drop_index('ix_lot_draws_member')
        batch_op.drop_index('ix_lot_draws_lot')

    op.drop_table('lot_draws')
    with op.batch_alter_table('benefit_claims', schema=None) as batch_op:
        batch_op.drop_index('ix_benefit_claims_program')
        batch_op.drop_index('ix_benefit_claims_member')

    op.drop_table('benefit_claims')
    with op.batch_alter_table('tier_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_tier_changes_member')

    op.drop_table('tier_changes')
    with op.batch_alter_table('points_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_points_entries_report')
        batch_op.drop_index('ix_points_entries_member_kind_occurred')
        batch_op.drop_index('ix_points_entries_member')

    op.drop_table('points_entries')
    with op.batch_alter_table('coupons', schema=None) as batch_op:
        batch_op.drop_index('ix_coupons_member_status')

    op.drop_table('coupons')
    op.drop_table('task_completions')
    with op.batch_alter_table('rfm_scores', schema=None) as batch_op:
        batch_op.drop_index('ix_rfm_scores_program_segment')

    op.drop_table('rfm_scores')
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_index('ix_reports_order')
        batch_op.drop_index('ix_reports_member_kind_occurred')

    op.drop_table('reports')
    op.drop_table('quest_passes')
    op.drop_table('notifications')
    op.drop_table('member_badges')
    op.drop_table('reward_stock')
    op.drop_table('program_versions')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index('ix_members_tier_valid_until')
        batch_op.drop_index('ix_members_program_tier')

    op.drop_table('members')
    op.drop_table('programs')
