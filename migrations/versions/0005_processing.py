"""Processing chain schema: routines, inputs, VMs, tasks, Nomad dispatches, statuses, products.

HRWSI-style: the harvester writes `input`, the orchestrator plans `processing_task` rows onto
`virtual_machine`s, the launcher records each Nomad job in `nomad_job_dispatch`, the status tracker
appends to `processing_status`, and a finished task's `product` becomes an input of the next
routine. `ops.harvest_cursor` keeps how far each catalogue source was harvested, so a restarted
harvester resumes where it stopped.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE processing.vm_flavour (
            name text PRIMARY KEY,
            cpu double precision NOT NULL CHECK (cpu > 0),
            ram_mb integer NOT NULL CHECK (ram_mb > 0),
            storage_gb double precision NOT NULL CHECK (storage_gb > 0)
        );

        CREATE TABLE processing.processing_routine (
            name text PRIMARY KEY,
            cpu double precision NOT NULL CHECK (cpu > 0),
            ram_mb integer NOT NULL CHECK (ram_mb > 0),
            storage_gb double precision NOT NULL CHECK (storage_gb >= 0),
            expected_duration_s integer NOT NULL CHECK (expected_duration_s > 0),
            docker_image text NOT NULL,
            -- argv given to the container; empty means the image's own entrypoint and command
            command text[] NOT NULL DEFAULT '{}',
            input_product_type text NOT NULL,
            output_product_type text NOT NULL,
            next_routine text REFERENCES processing.processing_routine (name),
            max_attempts integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
            CHECK (next_routine IS DISTINCT FROM name)
        );
        CREATE INDEX processing_routine_input_type_idx
            ON processing.processing_routine (input_product_type);

        CREATE TABLE processing.input (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            product_type text NOT NULL,
            -- identity in the catalogue; products of our own routines are 'product:<id>'
            catalogue_id text NOT NULL UNIQUE,
            name text NOT NULL,
            path text,
            measurement_date timestamptz,
            publication_date timestamptz,
            tile text,
            harvested_at timestamptz NOT NULL DEFAULT now(),
            source text NOT NULL CHECK (source IN ('catalogue', 'product')),
            source_product_id bigint,
            CHECK ((source = 'product') = (source_product_id IS NOT NULL))
        );
        CREATE INDEX input_publication_date_idx ON processing.input (publication_date);
        CREATE INDEX input_type_measurement_idx
            ON processing.input (product_type, measurement_date);
        CREATE INDEX input_tile_measurement_idx ON processing.input (tile, measurement_date);
        CREATE INDEX input_harvested_at_idx ON processing.input (harvested_at);

        CREATE TABLE processing.virtual_machine (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name text NOT NULL UNIQUE,
            flavour text NOT NULL REFERENCES processing.vm_flavour (name),
            cpu double precision NOT NULL CHECK (cpu > 0),
            ram_mb integer NOT NULL CHECK (ram_mb > 0),
            storage_gb double precision NOT NULL CHECK (storage_gb > 0),
            state text NOT NULL DEFAULT 'planned'
                CHECK (state IN ('planned', 'starting', 'running', 'stopping', 'stopped', 'failed')),
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX virtual_machine_state_idx ON processing.virtual_machine (state);

        CREATE TABLE processing.processing_task (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            input_id bigint REFERENCES processing.input (id),
            upstream_product_id bigint,
            routine text NOT NULL REFERENCES processing.processing_routine (name),
            virtual_machine_id bigint REFERENCES processing.virtual_machine (id),
            planned_start timestamptz,
            planned_end timestamptz,
            preceding_task_id bigint REFERENCES processing.processing_task (id),
            created_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (input_id, routine),
            CHECK (planned_end IS NULL OR planned_start IS NULL OR planned_end >= planned_start),
            CHECK (preceding_task_id IS DISTINCT FROM id)
        );
        CREATE INDEX processing_task_preceding_idx
            ON processing.processing_task (preceding_task_id);
        CREATE INDEX processing_task_vm_start_idx
            ON processing.processing_task (virtual_machine_id, planned_start);
        CREATE INDEX processing_task_routine_created_idx
            ON processing.processing_task (routine, created_at);
        CREATE INDEX processing_task_upstream_product_idx
            ON processing.processing_task (upstream_product_id);

        CREATE TABLE processing.nomad_job_dispatch (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            task_id bigint NOT NULL REFERENCES processing.processing_task (id),
            attempt integer NOT NULL CHECK (attempt >= 1),
            nomad_job_id text NOT NULL UNIQUE,
            dispatched_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (task_id, attempt)
        );

        CREATE TABLE processing.processing_status (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            task_id bigint NOT NULL REFERENCES processing.processing_task (id),
            dispatch_id bigint REFERENCES processing.nomad_job_dispatch (id),
            status text NOT NULL CHECK (status IN (
                'started', 'processed', 'internal_error', 'external_error', 'pending', 'terminated'
            )),
            exit_code integer,
            message text,
            at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX processing_status_task_at_idx
            ON processing.processing_status (task_id, at DESC, id DESC);
        CREATE INDEX processing_status_status_at_idx ON processing.processing_status (status, at);
        CREATE INDEX processing_status_dispatch_idx ON processing.processing_status (dispatch_id);

        CREATE TABLE processing.product (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            task_id bigint NOT NULL UNIQUE REFERENCES processing.processing_task (id),
            path text NOT NULL,
            product_type text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX product_type_created_idx ON processing.product (product_type, created_at);

        -- input -> product -> task -> input is a cycle: close it once all three exist
        ALTER TABLE processing.input ADD CONSTRAINT input_source_product_fk
            FOREIGN KEY (source_product_id) REFERENCES processing.product (id);
        CREATE UNIQUE INDEX input_source_product_idx
            ON processing.input (source_product_id) WHERE source_product_id IS NOT NULL;
        ALTER TABLE processing.processing_task ADD CONSTRAINT processing_task_upstream_product_fk
            FOREIGN KEY (upstream_product_id) REFERENCES processing.product (id);

        -- what people ask first: where does each task stand now
        CREATE VIEW processing.task_last_status AS
        SELECT DISTINCT ON (s.task_id)
            s.task_id, s.status, s.exit_code, s.message, s.at, s.dispatch_id
        FROM processing.processing_status s
        ORDER BY s.task_id, s.at DESC, s.id DESC;

        CREATE TABLE ops.harvest_cursor (
            source text PRIMARY KEY,
            published_after timestamptz,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        """
    )


def downgrade() -> None:
    # one statement: the foreign keys between input, task and product form a cycle
    op.execute(
        """
        DROP TABLE IF EXISTS ops.harvest_cursor;
        DROP VIEW IF EXISTS processing.task_last_status;
        DROP TABLE IF EXISTS
            processing.product, processing.processing_status, processing.nomad_job_dispatch,
            processing.processing_task, processing.virtual_machine, processing.input,
            processing.processing_routine, processing.vm_flavour;
        """
    )
