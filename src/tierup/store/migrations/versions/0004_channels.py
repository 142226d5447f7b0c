"""Channels (线上线下融合): where each report came from, and through which channel a member joined

reports.channel (ONLINE, APP, MINI_PROGRAM or STORE; ONLINE for every report before this) and
reports.store_code (the program's store, for STORE reports); members.enrolled_via.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 18:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('channel', sa.String(length=16), nullable=False, server_default='ONLINE'))
        batch_op.add_column(sa.Column('store_code', sa.String(length=40), nullable=True))
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('enrolled_via', sa.String(length=16), nullable=False, server_default='ONLINE'))


def downgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('enrolled_via')
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_column('store_code')
        batch_op.drop_column('channel')
