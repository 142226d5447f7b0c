"""Tags and campaigns: member_tags (MANUAL or RULE), tag_assignments (a MANUAL tag on a member),
campaigns (a gift to an audience) and campaign_recipients (a member a campaign is aimed at, and when
they were reached)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 10:00:00.000000
"""
from alembic import op
import sqlalchemy as sa

from tierup.store.types import UtcDateTime


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'member_tags',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('program_id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=40), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('rule', sa.Text(), nullable=True),
        sa.Column('created_at', UtcDateTime(), nullable=False),
        sa.Column('updated_at', UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['program_id'], ['programs.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('program_id', 'code'),
    )
    op.create_table(
        'tag_assignments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('tag_id', sa.Integer(), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('tagged_at', UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['member_id'], ['members.id']),
        sa.ForeignKeyConstraint(['tag_id'], ['member_tags.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('tag_id', 'member_id'),
    )
    with op.batch_alter_table('tag_assignments', schema=None) as batch_op:
        batch_op.create_index('ix_tag_assignments_member', ['member_id'], unique=False)
    op.create_table(
        'campaigns',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('program_id', sa.Integer(), nullable=False),
        sa.Column('external_id', sa.String(length=200), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('audience', sa.Text(), nullable=False),
        sa.Column('coupon_template', sa.String(length=40), nullable=True),
        sa.Column('points', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('launched_at', UtcDateTime(), nullable=False),
        sa.Column('converts_until', UtcDateTime(), nullable=False),
        sa.Column('finished_at', UtcDateTime(), nullable=True),
        sa.Column('launched_by', sa.String(length=200), nullable=False),
        sa.Column('payload_hash', sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(['program_id'], ['programs.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('program_id', 'external_id'),
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.create_index('ix_campaigns_program_status', ['program_id', 'status'], unique=False)
    op.create_table(
        'campaign_recipients',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('reached_at', UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id']),
        sa.ForeignKeyConstraint(['member_id'], ['members.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('campaign_id', 'member_id'),
    )
    with op.batch_alter_table('campaign_recipients', schema=None) as batch_op:
        batch_op.create_index('ix_campaign_recipients_member', ['member_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('campaign_recipients', schema=None) as batch_op:
        batch_op.drop_index('ix_campaign_recipients_member')
    op.drop_table('campaign_recipients')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_index('ix_campaigns_program_status')
    op.drop_table('campaigns')
    with op.batch_alter_table('tag_assignments', schema=None) as batch_op:
        batch_op.drop_index('ix_tag_assignments_member')
    op.drop_table('tag_assignments')
    op.drop_table('member_tags')
