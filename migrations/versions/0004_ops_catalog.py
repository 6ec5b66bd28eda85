"""The catalog of what was ingested: one row per source file (or object) and domain.

Incremental runs skip what the catalog says is done; re-ingesting a file with new content is a
new entry (the key is the content hash, the name is kept for people).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE ops.ingested_files (
            domain text NOT NULL,
            sha256 text NOT NULL,
            source_name text NOT NULL,
            size_bytes bigint,
            status text NOT NULL CHECK (status IN ('done', 'partial')),
            details jsonb NOT NULL DEFAULT '{}'::jsonb,
            run_id text,
            ingested_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (domain, sha256)
        );
        CREATE INDEX ingested_files_name_idx ON ops.ingested_files (domain, source_name);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS ops.ingested_files")
