"""webhook_deliveries.finished_at indexed: the jobs remove deliveries finished before the retention period
(services.webhooks.prune_deliveries), found by a range of it instead of a scan of the outbox

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27 22:20:00.000000
"""
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_webhook_deliveries_finished', 'webhook_deliveries', ['finished_at'])


def downgrade() -> None:
    op.drop_index('ix_webhook_deliveries_finished', table_name='webhook_deliveries')
