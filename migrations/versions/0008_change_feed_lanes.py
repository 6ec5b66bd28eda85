"""Change-feed lanes: the consumer position lives in the database, shared by a consumer's sensors.

A change-feed consumer (one reaction, e.g. new inputs -> orchestrator) is declared as several
sensors ("lanes") so that one of them is nearly always waiting on LISTEN. They share one position,
`ops.change_feed_consumer.feed_cursor`, advanced under the row's lock in the transaction that
records the batch. A batch remembers the lane that emitted it and that lane's tick, so a batch whose
run request never reached Dagster (daemon killed in between) is emitted again, by the same lane,
with the same run key; `run_seen_at` is set once a run for it was found.

`feed_cursor` NULL is a consumer from before lanes: its position is still the first lane's Dagster
cursor, which that lane moves into the row at its first tick.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE ops.change_feed_consumer
            -- {"xmin": "<xid8>", "seen": [...]}: the shared position of the consumer's lanes
            ADD COLUMN feed_cursor jsonb,
            -- when a lane last claimed a batch: lanes space their claims from it
            ADD COLUMN last_claim_at timestamptz;

        ALTER TABLE ops.change_feed_batch
            -- the lane (sensor name) that emitted the batch last: only it emits it again
            ADD COLUMN emitted_by text,
            -- that lane's tick number: above the lane's stored Dagster cursor = never handed over
            ADD COLUMN emitted_tick bigint,
            ADD COLUMN emitted_at timestamptz,
            ADD COLUMN emissions integer NOT NULL DEFAULT 0,
            -- when a Dagster run with the batch's run key (or batch tags) was found
            ADD COLUMN run_seen_at timestamptz;

        CREATE INDEX change_feed_batch_unconfirmed_idx
            ON ops.change_feed_batch (consumer, emitted_by)
            WHERE run_seen_at IS NULL AND emitted_by IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX IF EXISTS ops.change_feed_batch_unconfirmed_idx;
        ALTER TABLE ops.change_feed_batch
            DROP COLUMN IF EXISTS run_seen_at,
            DROP COLUMN IF EXISTS emissions,
            DROP COLUMN IF EXISTS emitted_at,
            DROP COLUMN IF EXISTS emitted_tick,
            DROP COLUMN IF EXISTS emitted_by;
        ALTER TABLE ops.change_feed_consumer
            DROP COLUMN IF EXISTS last_claim_at,
            DROP COLUMN IF EXISTS feed_cursor;
        """
    )
