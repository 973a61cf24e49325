"""index the columns that reference blobs, on PostgreSQL (retention and pruning)

Pruning deletes blobs that no version, change or other blob refers to any more. PostgreSQL checks every
referencing foreign key on each such delete, which scans the whole table without an index. SQLite gets
no indexes: they would add about 14% to each recorded version, and `feedwatch prune` checks references
itself there (storage/schema.py explains). On SQLite this revision therefore changes nothing but the
revision number.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

INDEXES = (
    ('blobs', 'ix_blobs_base', 'base', 'base IS NOT NULL'),
    ('versions', 'ix_versions_text_hash', 'text_hash', None),
    ('versions', 'ix_versions_raw_hash', 'raw_hash', None),
    ('changes', 'ix_changes_diff_hash', 'diff_hash', 'diff_hash IS NOT NULL'),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table, name, column, where in INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(name, [column], unique=False,
                                  postgresql_where=sa.text(where) if where else None)


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table, name, _column, _where in reversed(INDEXES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(name)
