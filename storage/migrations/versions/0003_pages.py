"""pages: per-page validators and state for page sources (follow, kind page, kind sitemap)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'pages',
        sa.Column('feed_id', sa.Integer(), sa.ForeignKey('feeds.id', name='fk_pages_feed_id_feeds'),
                  nullable=False),
        sa.Column('url', sa.Text(), nullable=False),
        sa.Column('etag', sa.Text(), nullable=True),
        sa.Column('last_modified', sa.Text(), nullable=True),
        sa.Column('lastmod', sa.Text(), nullable=True),
        sa.Column('body_hash', sa.LargeBinary(length=32), nullable=True),
        sa.Column('text_hash', sa.LargeBinary(length=32), nullable=True),
        sa.Column('title', sa.Text(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('checked_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('feed_id', 'url', name='pk_pages'),
    )


def downgrade() -> None:
    op.drop_table('pages')
