"""Column schemas of the logbook tables, as the Dagster catalog shows them (see migration 0003)."""

from platform_assets.table_metadata import Column

RAW_MESSAGES: list[Column] = [
    ("operation_number", "text", "unique id of the message (ERS RN / FLUX message id)"),
    ("transmission_format", "text", "ERS or FLUX"),
    ("xml_message", "text", "the message as received"),
    ("source_file", "text", "inbox file (and member) it came from"),
    ("received_at", "timestamptz", "when the platform stored it"),
    (
        "content_sha256",
        "text",
        "SHA-256 of the message text without padding or XML declaration: a re-delivery under a "
        "stored operation number is compared with it",
    ),
]

REPORTS: list[Column] = [
    ("id", "bigint", "row id"),
    ("operation_number", "text", "message the report came in (logbook_raw_messages)"),
    ("operation_country", "text", "country that sent the message"),
    ("operation_datetime_utc", "timestamptz", "when the message was sent"),
    (
        "operation_type",
        "text",
        "DAT (new), COR (correction), DEL (deletion), RET (acknowledgement)",
    ),
    ("report_id", "text", "id of the report"),
    ("referenced_report_id", "text", "report a COR, DEL or RET refers to"),
    ("report_datetime_utc", "timestamptz", "when the report was made"),
    ("cfr", "text", "vessel CFR (joins reference.vessels)"),
    ("ircs", "text", "vessel radio call sign"),
    ("external_identification", "text", "vessel external marking"),
    ("vessel_name", "text", "vessel name"),
    ("flag_state", "text", "flag state"),
    ("imo", "text", "IMO number"),
    ("log_type", "text", "DEP, FAR, DIS, COE, COX, CRO, PNO, LAN, RTP, EOF, ..."),
    ("value", "jsonb", "the report's content (catches, gears, positions, port...)"),
    ("trip_number", "text", "fishing trip"),
    ("software", "text", "software that produced the message"),
    ("is_test_message", "boolean", "a test message"),
    ("transmission_format", "text", "ERS or FLUX"),
    ("activity_datetime_utc", "timestamptz", "when the declared activity took place"),
    ("integration_datetime_utc", "timestamptz", "when the platform stored it"),
]

RESOLVED_EXTRA: list[Column] = [
    ("is_corrected", "boolean", "this report is the latest correction of another one"),
    ("acknowledgement_return_status", "text", "return status of the hub's acknowledgement"),
    ("is_acknowledged", "boolean", "acknowledged by the hub (false: rejected, null: no RET yet)"),
    ("acknowledged_at", "timestamptz", "when the acknowledgement was sent"),
]
