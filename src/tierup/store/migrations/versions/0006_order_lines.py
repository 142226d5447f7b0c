"""reports.lines: the lines an order report names (sku, unit price in fen, quantity, categories), as JSON

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 18:30:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lines', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_column('lines')
