"""Orchestrator and launcher: readiness decided by the database, attempts, plan notes.

- `processing_task.unplaced_reason`: why the orchestrator could not place a task (its row stays,
  without a VM, and is planned again by the next orchestrator run), or why it is blocked.
- One successor per (preceding task, routine): the orchestrator plans a routine's chain ahead, and
  this keeps two plans of the same successor out even if the planning lock were bypassed.
- `nomad_job_dispatch.output_path`: where the attempt writes its product, fixed at dispatch so
  the status tracker records the path the job was given.
- View `processing.task_attempt`: each dispatched task's latest attempt and that attempt's latest
  status.
- View `processing.ready_task`: the tasks a launcher may dispatch now, with the attempt number to
  use: placed on a VM, preceding task (if any) processed, and either never dispatched or its
  latest attempt failed with attempts left.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE processing.processing_task ADD COLUMN unplaced_reason text;
        CREATE UNIQUE INDEX processing_task_successor_uq
            ON processing.processing_task (preceding_task_id, routine)
            WHERE preceding_task_id IS NOT NULL;
        CREATE INDEX processing_task_unplaced_idx
            ON processing.processing_task (id) WHERE virtual_machine_id IS NULL;

        ALTER TABLE processing.nomad_job_dispatch ADD COLUMN output_path text;
        CREATE INDEX processing_status_dispatch_at_idx
            ON processing.processing_status (dispatch_id, at DESC, id DESC);

        CREATE VIEW processing.task_attempt AS
        SELECT d.task_id, d.id AS dispatch_id, d.attempt, d.nomad_job_id, d.output_path,
               d.dispatched_at, s.status, s.exit_code, s.message, s.at
        FROM processing.processing_task t
        JOIN LATERAL (
            SELECT x.id, x.task_id, x.attempt, x.nomad_job_id, x.output_path, x.dispatched_at
            FROM processing.nomad_job_dispatch x
            WHERE x.task_id = t.id
            ORDER BY x.attempt DESC
            LIMIT 1
        ) d ON true
        LEFT JOIN LATERAL (
            SELECT y.status, y.exit_code, y.message, y.at
            FROM processing.processing_status y
            WHERE y.dispatch_id = d.id
            ORDER BY y.at DESC, y.id DESC
            LIMIT 1
        ) s ON true;

        CREATE VIEW processing.ready_task AS
        SELECT t.id AS task_id, COALESCE(a.attempt, 0) + 1 AS attempt
        FROM processing.processing_task t
        JOIN processing.processing_routine r ON r.name = t.routine
        LEFT JOIN processing.task_attempt a ON a.task_id = t.id
        WHERE t.virtual_machine_id IS NOT NULL
          AND (
            a.task_id IS NULL
            OR (a.status IN ('internal_error', 'external_error') AND a.attempt < r.max_attempts)
          )
          AND (
            t.preceding_task_id IS NULL
            OR (
                SELECT s.status FROM processing.processing_status s
                WHERE s.task_id = t.preceding_task_id
                ORDER BY s.at DESC, s.id DESC
                LIMIT 1
            ) = 'processed'
          );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP VIEW IF EXISTS processing.ready_task;
        DROP VIEW IF EXISTS processing.task_attempt;
        DROP INDEX IF EXISTS processing.processing_status_dispatch_at_idx;
        ALTER TABLE processing.nomad_job_dispatch DROP COLUMN IF EXISTS output_path;
        DROP INDEX IF EXISTS processing.processing_task_unplaced_idx;
        DROP INDEX IF EXISTS processing.processing_task_successor_uq;
        ALTER TABLE processing.processing_task DROP COLUMN IF EXISTS unplaced_reason;
        """
    )
