"""Stored value (储值): a ledger of each member's prepaid balance, in fen

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 18:10:00.000000
"""
from alembic import op
import sqlalchemy as sa

from tierup.store.types import UtcDateTime


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'stored_value_entries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('program_id', sa.Integer(), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('amount_fen', sa.BigInteger(), nullable=False),
        sa.Column('balance_after_fen', sa.BigInteger(), nullable=False),
        sa.Column('reason', sa.String(length=300), nullable=False),
        sa.Column('occurred_at', UtcDateTime(), nullable=False),
        sa.Column('report_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['member_id'], ['members.id']),
        sa.ForeignKeyConstraint(['program_id'], ['programs.id']),
        sa.ForeignKeyConstraint(['report_id'], ['reports.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('stored_value_entries', schema=None) as batch_op:
        batch_op.create_index('ix_stored_value_entries_member', ['member_id', 'id'], unique=False)
        batch_op.create_index('ix_stored_value_entries_report', ['report_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('stored_value_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_stored_value_entries_report')
        batch_op.drop_index('ix_stored_value_entries_member')
    op.drop_table('stored_value_entries')
