"""Electronic logbook: raw messages, reports, quarantine, and the resolved view.

Loading is idempotent by operation number: a message's reports are inserted only by the
transaction that inserted its raw message.

logbook_reports_resolved is what the monitoring application reads.

Resolution at read time, from the stored reports:
- DEL removes the report it references (by report id);
- COR replaces the report it references; among several corrections of one report the latest
  (operation datetime, then arrival) wins, and a correction that is itself corrected is replaced;
- RET attaches its acknowledgement (return status, accepted when "000") to the report whose report
  id or operation number it references; the latest acknowledgement wins.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE logbook.logbook_raw_messages (
            operation_number text PRIMARY KEY,
            transmission_format text NOT NULL CHECK (transmission_format IN ('ERS', 'FLUX')),
            xml_message text NOT NULL,
            source_file text,
            received_at timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE logbook.logbook_reports (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            operation_number text NOT NULL
                REFERENCES logbook.logbook_raw_messages (operation_number),
            operation_country text,
            operation_datetime_utc timestamptz,
            operation_type text NOT NULL,
            report_id text,
            referenced_report_id text,
            report_datetime_utc timestamptz,
            cfr text,
            ircs text,
            external_identification text,
            vessel_name text,
            flag_state text,
            imo text,
            log_type text,
            value jsonb,
            trip_number text,
            software text,
            is_test_message boolean NOT NULL DEFAULT false,
            transmission_format text NOT NULL,
            activity_datetime_utc timestamptz,
            integration_datetime_utc timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX logbook_reports_operation_number_idx ON logbook.logbook_reports (operation_number);
        CREATE INDEX logbook_reports_report_id_idx ON logbook.logbook_reports (report_id);
        CREATE INDEX logbook_reports_referenced_report_id_idx
            ON logbook.logbook_reports (referenced_report_id);
        CREATE INDEX logbook_reports_cfr_activity_idx
            ON logbook.logbook_reports (cfr, activity_datetime_utc);

        CREATE TABLE logbook.logbook_quarantine (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            raw_sha256 text NOT NULL UNIQUE,
            source_file text NOT NULL,
            member text,
            raw_message text NOT NULL,    -- for people: the XML as text
            raw_bytes bytea NOT NULL,     -- for replay: exactly the bytes received
            error text NOT NULL,
            quarantined_at timestamptz NOT NULL DEFAULT now(),
            last_attempt_at timestamptz NOT NULL DEFAULT now(),
            attempts integer NOT NULL DEFAULT 1
        );
        """
    )
    op.execute(
        """
        CREATE VIEW logbook.logbook_reports_resolved AS
        WITH deleted AS (
            SELECT DISTINCT referenced_report_id AS report_id
            FROM logbook.logbook_reports
            WHERE operation_type = 'DEL' AND referenced_report_id IS NOT NULL
        ),
        corrections AS (
            SELECT id, report_id, referenced_report_id,
                   row_number() OVER (
                       PARTITION BY referenced_report_id
                       ORDER BY operation_datetime_utc DESC NULLS LAST, id DESC
                   ) AS recency
            FROM logbook.logbook_reports
            WHERE operation_type = 'COR' AND referenced_report_id IS NOT NULL
        ),
        acknowledgements AS (
            SELECT DISTINCT ON (referenced_report_id)
                   referenced_report_id,
                   value ->> 'returnStatus' AS return_status,
                   operation_datetime_utc AS acknowledged_at
            FROM logbook.logbook_reports
            WHERE operation_type = 'RET' AND referenced_report_id IS NOT NULL
            ORDER BY referenced_report_id, operation_datetime_utc DESC NULLS LAST, id DESC
        )
        SELECT r.*,
               r.operation_type = 'COR' AS is_corrected,
               COALESCE(ack_by_report.return_status, ack_by_operation.return_status)
                   AS acknowledgement_return_status,
               COALESCE(ack_by_report.return_status, ack_by_operation.return_status) = '000'
                   AS is_acknowledged,
               COALESCE(ack_by_report.acknowledged_at, ack_by_operation.acknowledged_at)
                   AS acknowledged_at
        FROM logbook.logbook_reports r
        LEFT JOIN acknowledgements ack_by_report
               ON ack_by_report.referenced_report_id = r.report_id
        LEFT JOIN acknowledgements ack_by_operation
               ON ack_by_operation.referenced_report_id = r.operation_number
              AND ack_by_report.referenced_report_id IS NULL
        WHERE r.operation_type IN ('DAT', 'COR')
          AND (r.report_id IS NULL OR r.report_id NOT IN (SELECT report_id FROM deleted))
          AND NOT EXISTS (
              SELECT 1 FROM corrections c WHERE c.referenced_report_id = r.report_id
          )
          AND (
              r.operation_type = 'DAT'
              OR (
                  r.referenced_report_id NOT IN (SELECT report_id FROM deleted)
                  AND EXISTS (SELECT 1 FROM corrections c WHERE c.id = r.id AND c.recency = 1)
              )
          );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP VIEW IF EXISTS logbook.logbook_reports_resolved;
        DROP TABLE IF EXISTS logbook.logbook_quarantine;
        DROP TABLE IF EXISTS logbook.logbook_reports;
        DROP TABLE IF EXISTS logbook.logbook_raw_messages;
        """
    )
