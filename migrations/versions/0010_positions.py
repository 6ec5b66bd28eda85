"""Vessel positions: the partitioned positions table, quarantine, track state, last positions.

Choices, and why:

- ``positions.positions`` is range-partitioned on ``datetime_utc`` **by day**. Measured on this
  machine (benchmarks/positions.py) a load into the current day's partition keeps the unique
  index of the hot partition small and cached, whereas a monthly partition of a 5,000-vessel
  fleet holds ~20M rows whose index no longer stays in cache; a day is also the Dagster partition
  (a backfill of one day touches one table partition), the retention step (drop whole days, no
  DELETE) and the window of last positions (24 h: at most two partitions read). Planning over a
  year of daily partitions (~400) stays in the milliseconds with pruning on ``datetime_utc``.
  Partitions are created ahead by ``positions_partition_maintenance_job`` and on demand by the
  loader (a late record), always through ``positions.ensure_partition(day)``.
- Natural key: ``(track_id, datetime_utc, latitude, longitude)``, unique. ``track_id`` is the
  surrogate of the exact (CFR, external marking, IRCS) triple in ``positions.track_state``
  (nulls equal, as the enrichment groups tracks). A record hash would also work but hides what
  the key is, and the composite index doubles as the "one vessel's track over a time range"
  index, so the unique key costs no extra index. The partition key ``datetime_utc`` is in it,
  as PostgreSQL requires, and so is ``track_id``, the column a Citus distribution (or a
  TimescaleDB space dimension) would use: nothing here prevents either (docs/positions.md).
- ``id`` comes from a sequence, not an identity, so the loader can number new rows before it
  enriches them (ties on ``datetime_utc`` are ordered by ``id``). There is no unique index on
  ``id`` alone: it would have to include the partition key anyway, and rows are always reached
  through (track_id, datetime_utc).
- "All positions since T": a BRIN index on ``datetime_utc``. Rows arrive nearly in time order
  inside a day's partition, so BRIN prunes as well as a B-tree for that query at a fraction of
  the write cost; late records only widen a few ranges.
- Enrichment is stored on the same rows: new rows are enriched before they are written (one
  write per row); only the rows a later batch revises (the last row of a track whose
  ``is_fishing`` waited for its successor, the tail of a track after a late record) are updated.
  A sibling table would double the write volume of the common case for nothing.
- ``positions.track_state``: one row per track, the identity and the carried enrichment state
  (what ``platform_assets.positions.enrichment`` needs to continue the track exactly).
- ``positions.naf_quarantine``: bad NAF lines, the raw bytes kept in ``bytea`` (text cannot hold
  NUL), unique per (file, line number, content) so a file ingested twice is quarantined once.
- ``positions.last_positions``: one row per track, replaced in one transaction by the refresh.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE positions.track_state (
            track_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            internal_reference_number text,
            external_reference_number text,
            ircs text,
            last_position_id bigint,
            last_datetime_utc timestamptz,
            state jsonb,
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT track_state_identity_key UNIQUE NULLS NOT DISTINCT
                (internal_reference_number, external_reference_number, ircs)
        );

        CREATE SEQUENCE positions.positions_id_seq AS bigint;

        CREATE TABLE positions.positions (
            id bigint NOT NULL DEFAULT nextval('positions.positions_id_seq'),
            track_id bigint NOT NULL,
            internal_reference_number text,
            external_reference_number text,
            ircs text,
            vessel_name text,
            flag_state text,
            from_country text,
            destination_country text,
            trip_number text,
            latitude double precision NOT NULL,
            longitude double precision NOT NULL,
            speed double precision,
            course double precision,
            datetime_utc timestamptz NOT NULL,
            message_type text,
            is_manual boolean NOT NULL DEFAULT false,
            network_type text,
            is_at_port boolean,
            meters_from_previous_position double precision,
            time_since_previous_position double precision,
            average_speed double precision,
            is_fishing boolean,
            time_emitting_at_sea double precision,
            CONSTRAINT positions_natural_key UNIQUE (track_id, datetime_utc, latitude, longitude)
        ) PARTITION BY RANGE (datetime_utc);
        ALTER SEQUENCE positions.positions_id_seq OWNED BY positions.positions.id;
        CREATE INDEX positions_datetime_brin ON positions.positions
            USING brin (datetime_utc) WITH (pages_per_range = 32);

        -- Creates the day's partition if missing; safe under concurrency (advisory lock per day).
        CREATE FUNCTION positions.ensure_partition(day date) RETURNS text
        LANGUAGE plpgsql AS $$
        DECLARE
            name text := 'positions_' || to_char(day, 'YYYYMMDD');
        BEGIN
            PERFORM pg_advisory_xact_lock(hashtext('positions.partition'), (day - date '2000-01-01'));
            IF to_regclass('positions.' || name) IS NULL THEN
                EXECUTE format(
                    'CREATE TABLE positions.%I PARTITION OF positions.positions '
                    'FOR VALUES FROM (%L) TO (%L)',
                    name,
                    (day::timestamp AT TIME ZONE 'UTC'),
                    ((day + 1)::timestamp AT TIME ZONE 'UTC')
                );
            END IF;
            RETURN name;
        END;
        $$;

        CREATE TABLE positions.naf_quarantine (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            source_file text NOT NULL,
            line_number integer NOT NULL,
            line text NOT NULL,           -- for people: the line decoded (bad bytes replaced)
            raw_bytes bytea NOT NULL,     -- for replay: exactly the bytes received
            raw_sha256 text NOT NULL,
            error text NOT NULL,
            quarantined_at timestamptz NOT NULL DEFAULT now(),
            last_attempt_at timestamptz NOT NULL DEFAULT now(),
            attempts integer NOT NULL DEFAULT 1,
            CONSTRAINT naf_quarantine_line_key UNIQUE (source_file, line_number, raw_sha256)
        );

        CREATE TABLE positions.last_positions (
            track_id bigint PRIMARY KEY,
            id bigint NOT NULL,
            vessel_id bigint,
            cfr text,
            external_immatriculation text,
            ircs text,
            vessel_name text,
            flag_state text,
            latitude double precision NOT NULL,
            longitude double precision NOT NULL,
            speed double precision,
            course double precision,
            last_position_datetime_utc timestamptz NOT NULL,
            is_manual boolean,
            emission_period_s double precision,
            vessel_identifier text,
            is_at_port boolean,
            is_fishing boolean,
            time_emitting_at_sea double precision,
            estimated_current_latitude double precision,
            estimated_current_longitude double precision,
            refreshed_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX last_positions_cfr_idx ON positions.last_positions (cfr);
        CREATE INDEX last_positions_datetime_idx
            ON positions.last_positions (last_position_datetime_utc);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS positions.last_positions;
        DROP TABLE IF EXISTS positions.naf_quarantine;
        DROP FUNCTION IF EXISTS positions.ensure_partition(date);
        DROP TABLE IF EXISTS positions.positions;
        DROP SEQUENCE IF EXISTS positions.positions_id_seq;
        DROP TABLE IF EXISTS positions.track_state;
        """
    )
