"""points_entries indexed by program and expiry: the expiry job and the import find the members whose lots
fall due in a range of time (services.expiry) by a range of the index instead of a scan of the whole ledger

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28 02:50:00.000000
"""
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        op.create_index('ix_points_entries_expiring', 'points_entries', ['program_id', 'expires_at'])
        return
    # The ledger is the largest table: built concurrently, the index leaves it open to writes meanwhile
    # (`tierup serve` migrates as it starts). CONCURRENTLY runs outside a transaction, and a build that failed
    # or was stopped leaves an invalid index of that name behind, dropped first.
    with op.get_context().autocommit_block():
        op.execute('DROP INDEX CONCURRENTLY IF EXISTS ix_points_entries_expiring')
        op.create_index('ix_points_entries_expiring', 'points_entries', ['program_id', 'expires_at'],
                        postgresql_concurrently=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        op.drop_index('ix_points_entries_expiring', table_name='points_entries')
        return
    with op.get_context().autocommit_block():
        op.drop_index('ix_points_entries_expiring', table_name='points_entries', postgresql_concurrently=True)
