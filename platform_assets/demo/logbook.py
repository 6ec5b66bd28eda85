"""Sample logbook traffic for the demo: one archive in the inbox."""

from platform_assets.samples.logbook import write_sample_archive
from resources.inboxes import LogbookInboxResource
from resources.warehouse import WarehouseResource, fetch_one

DEMO_ARCHIVE = "hub_sample_20260302.zip"


def prepare_demo(warehouse: WarehouseResource) -> None:
    """Drop the sample archive (40 messages of whole trips + 1 malformed) into the inbox."""
    inbox = LogbookInboxResource().path()
    target = inbox / DEMO_ARCHIVE
    if not target.exists():
        write_sample_archive(target)


def summary(warehouse: WarehouseResource) -> list[str]:
    """A few resolved reports, as the monitoring application would list them."""
    with warehouse.connect() as conn:
        rows = conn.execute(
            "SELECT activity_datetime_utc, vessel_name, cfr, log_type, operation_type, "
            "coalesce(acknowledgement_return_status, '-') "
            "FROM logbook.logbook_reports_resolved ORDER BY activity_datetime_utc DESC NULLS LAST LIMIT 6"
        ).fetchall()
        quarantined = fetch_one(conn, "SELECT count(*) FROM logbook.logbook_quarantine")[0]
    lines = ["latest logbook reports (resolved view):"]
    lines += [
        f"  {at:%Y-%m-%d %H:%M}  {name:<16} {cfr}  {log_type:<4} {op}  ack {ack}"
        for at, name, cfr, log_type, op, ack in rows
    ]
    lines.append(f"  quarantined messages: {quarantined} (see logbook.logbook_quarantine)")
    return lines
