"""Operations: one ingestion catalog (ops.ingested_files migrated into it) and run metrics.

`ops.catalog` has one row per ingested item, upserted on (repository, source, identifier,
sub_identifier, collection_date); `collection_date` may be NULL and still takes part in the key
(NULLS NOT DISTINCT, PostgreSQL 15+). `rows_written` is what the recording run stored: a run that
stored nothing never replaces the record of one that stored something (two concurrent ingests of
one file, issue #20); `last_seen_at` / `last_seen_run_id` always move.

The rows of the logbook inbox's `ops.ingested_files` become items of source 'inbox': identifier =
file name, sub_identifier = content hash (a file that comes back with new content is a new item,
as before). The downgrade rebuilds `ops.ingested_files` from those rows.

`ops.run_metrics` has one row per (run, job, source): items and rows read / written / rejected,
duration, the time window the run covered (what "since the last successful run" starts from).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE ops.catalog (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            repository text NOT NULL,
            source text NOT NULL,
            identifier text NOT NULL,
            sub_identifier text NOT NULL DEFAULT '',
            collection_date date,
            location text,
            content_hash text,
            size_bytes bigint,
            status text NOT NULL CHECK (status IN ('done', 'partial', 'failed')),
            rows_written bigint NOT NULL DEFAULT 0 CHECK (rows_written >= 0),
            details jsonb NOT NULL DEFAULT '{}'::jsonb,
            run_id text,
            ingested_at timestamptz NOT NULL DEFAULT now(),
            last_seen_at timestamptz NOT NULL DEFAULT now(),
            last_seen_run_id text,
            CONSTRAINT catalog_item_key UNIQUE NULLS NOT DISTINCT
                (repository, source, identifier, sub_identifier, collection_date)
        );
        CREATE INDEX catalog_hash_idx ON ops.catalog (repository, content_hash);
        CREATE INDEX catalog_date_idx ON ops.catalog (repository, source, collection_date);

        INSERT INTO ops.catalog (repository, source, identifier, sub_identifier, location,
                                 content_hash, size_bytes, status, rows_written, details, run_id,
                                 ingested_at, last_seen_at, last_seen_run_id)
        SELECT domain, 'inbox', source_name, sha256, source_name, sha256, size_bytes, status,
               CASE WHEN details->>'new_messages' ~ '^[0-9]+$'
                    THEN (details->>'new_messages')::bigint ELSE 0 END,
               details, run_id, ingested_at, ingested_at, run_id
        FROM ops.ingested_files
        ON CONFLICT ON CONSTRAINT catalog_item_key DO NOTHING;

        DROP TABLE ops.ingested_files;

        CREATE TABLE ops.run_metrics (
            run_id text NOT NULL,
            job text NOT NULL,
            source text NOT NULL DEFAULT '',
            status text NOT NULL DEFAULT 'success'
                CHECK (status IN ('success', 'failure', 'partial')),
            items_read bigint NOT NULL DEFAULT 0,
            items_written bigint NOT NULL DEFAULT 0,
            items_rejected bigint NOT NULL DEFAULT 0,
            rows_read bigint NOT NULL DEFAULT 0,
            rows_written bigint NOT NULL DEFAULT 0,
            rows_rejected bigint NOT NULL DEFAULT 0,
            duration_seconds double precision NOT NULL DEFAULT 0,
            window_start timestamptz,
            window_end timestamptz,
            started_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz NOT NULL DEFAULT now(),
            details jsonb NOT NULL DEFAULT '{}'::jsonb,
            PRIMARY KEY (run_id, job, source)
        );
        CREATE INDEX run_metrics_history_idx ON ops.run_metrics (job, source, finished_at DESC);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS ops.run_metrics;

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

        INSERT INTO ops.ingested_files (domain, sha256, source_name, size_bytes, status, details,
                                        run_id, ingested_at)
        SELECT DISTINCT ON (repository, content_hash)
               repository, content_hash, coalesce(location, identifier), size_bytes, status,
               details, run_id, ingested_at
        FROM ops.catalog
        WHERE source = 'inbox' AND content_hash IS NOT NULL AND status IN ('done', 'partial')
        ORDER BY repository, content_hash, ingested_at DESC;

        DROP TABLE ops.catalog;
        """
    )
