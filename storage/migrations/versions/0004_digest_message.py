"""deliveries.message: the delivery id of the digest a delivery went out in

A digest is one message for several outbox rows. Its delivery id is written on those rows before it is
sent, so a retry (after a failure or a crash) sends the same changes under the same id, even when newer
changes have joined the outbox meanwhile; they go out in a digest of their own.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('message', sa.String(length=40), nullable=True))
        batch_op.create_index('ix_deliveries_message', ['message'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_message')
        batch_op.drop_column('message')
