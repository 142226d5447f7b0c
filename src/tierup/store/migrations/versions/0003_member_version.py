"""members.version: a counter of the write transactions that changed the member

Every write transaction that changes a member's data (an order, a refund, a check-in, a claim, a
job's change, …) raises it by one, so an answer kept about the member — the response cache's —
can tell with one indexed read whether it still holds, in any process.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 14:30:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('version')
