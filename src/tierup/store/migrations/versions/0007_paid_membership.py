"""Paid membership (付费会员, PLUS): the plan a member holds or last held, and its run

members.membership_plan, membership_started_at (the start of the continuous run) and
membership_until (its end; a renewal moves it on).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 18:40:00.000000
"""
from alembic import op
import sqlalchemy as sa

from tierup.store.types import UtcDateTime


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('membership_plan', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('membership_started_at', UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column('membership_until', UtcDateTime(), nullable=True))
        batch_op.create_index('ix_members_membership_until', ['program_id', 'membership_until'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index('ix_members_membership_until')
        batch_op.drop_column('membership_until')
        batch_op.drop_column('membership_started_at')
        batch_op.drop_column('membership_plan')
