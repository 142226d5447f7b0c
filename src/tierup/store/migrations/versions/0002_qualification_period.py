"""members.qualification_started_at: the start of the current tier qualification period

Cumulative tier figures (cumulative spend, largest order, order count without a window) count
the member's current qualification period, which restarts at every tier evaluation. Existing
members get the time of their latest evaluation (a RENEWAL, or an EVALUATION that moved them),
which is what the column would hold had it always existed; members never evaluated keep NULL:
their period runs from enrolment.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 10:40:00.000000
"""
from alembic import op
import sqlalchemy as sa
import tierup.store.types


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('qualification_started_at', tierup.store.types.UtcDateTime(), nullable=True))
    op.execute(sa.text(
        "UPDATE members SET qualification_started_at = ("
        " SELECT max(tier_changes.changed_at) FROM tier_changes"
        " WHERE tier_changes.member_id = members.id AND tier_changes.reason IN ('EVALUATION', 'RENEWAL'))"))


def downgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('qualification_started_at')
