"""Change capture: outbox table, triggers, consumer positions and recorded batches.

Statement-level triggers with transition tables write one `ops.change_event` row per changed row
of the processing tables and send one `pg_notify('fishnet_changes', '<schema>.<table>')` per
statement that changed rows. Sensors read the outbox with a transaction-id watermark as their
cursor (platform_assets/processing/change_feed.py); the notification only wakes them up, so a
notification sent while nobody listens loses nothing.

A trigger with transition tables may fire on one event only, hence separate INSERT and UPDATE
triggers.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

CAPTURED_TABLES = ("input", "processing_task", "processing_status", "product")
OPERATIONS = ("insert", "update")


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE ops.change_event (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            table_name text NOT NULL,
            operation text NOT NULL CHECK (operation IN ('INSERT', 'UPDATE')),
            row_key bigint NOT NULL,
            -- the writing transaction: readers never pass an id whose transaction may still commit
            txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
            at timestamptz NOT NULL DEFAULT clock_timestamp()
        );
        CREATE INDEX change_event_txid_idx ON ops.change_event (txid);

        CREATE FUNCTION ops.capture_changes() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            changed bigint;
            qualified text := TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME;
        BEGIN
            INSERT INTO ops.change_event (table_name, operation, row_key)
            SELECT qualified, TG_OP, n.id FROM new_rows n ORDER BY n.id;
            GET DIAGNOSTICS changed = ROW_COUNT;
            -- statement triggers also fire for statements that changed nothing
            -- (INSERT ... ON CONFLICT DO NOTHING on known rows): wake nobody then
            IF changed > 0 THEN
                PERFORM pg_notify('fishnet_changes', qualified);
            END IF;
            RETURN NULL;
        END
        $$;

        -- Where each change-feed consumer (sensor) durably is: pruning keeps what the slowest needs.
        CREATE TABLE ops.change_feed_consumer (
            consumer text PRIMARY KEY,
            -- the xmin of the cursor Dagster stored ("xmin" itself is a system column name)
            watermark xid8 NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        );

        -- The batch a consumer emitted from a given cursor: a tick whose new cursor was never
        -- stored re-emits the same batch (same run key) instead of reading anew.
        CREATE TABLE ops.change_feed_batch (
            consumer text NOT NULL,
            from_cursor_sha text NOT NULL,
            batch_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            from_xmin xid8 NOT NULL,
            to_cursor jsonb NOT NULL,
            event_count integer NOT NULL CHECK (event_count > 0),
            first_event_id bigint NOT NULL,
            last_event_id bigint NOT NULL,
            event_ids bigint[] NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (consumer, from_cursor_sha)
        );
        CREATE INDEX change_feed_batch_consumer_created_idx
            ON ops.change_feed_batch (consumer, created_at);
        """
    )
    for table in CAPTURED_TABLES:
        for operation in OPERATIONS:
            op.execute(
                f"""
                CREATE TRIGGER {table}_capture_{operation}
                AFTER {operation.upper()} ON processing.{table}
                REFERENCING NEW TABLE AS new_rows
                FOR EACH STATEMENT EXECUTE FUNCTION ops.capture_changes()
                """
            )


def downgrade() -> None:
    for table in CAPTURED_TABLES:
        for operation in OPERATIONS:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_capture_{operation} ON processing.{table}")
    op.execute(
        """
        DROP FUNCTION IF EXISTS ops.capture_changes();
        DROP TABLE IF EXISTS ops.change_feed_batch;
        DROP TABLE IF EXISTS ops.change_feed_consumer;
        DROP TABLE IF EXISTS ops.change_event;
        """
    )
