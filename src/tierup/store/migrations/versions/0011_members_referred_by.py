"""members.referred_by_id indexed: a member's state names the first orders of the members they referred, and
without the index every read of one member's state scanned all members

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27 12:10:00.000000
"""
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_members_referred_by', 'members', ['referred_by_id'])


def downgrade() -> None:
    op.drop_index('ix_members_referred_by', table_name='members')
