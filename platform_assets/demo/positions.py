"""Positions in the demo: the sample NAF files, moved to the last two days, dropped in the inbox.

The committed samples (platform_assets/samples/naf/) are dated 2025-03-03/04. Moved so that their
second day ends yesterday, the last positions are recent (and inside the retention window), as a
live feed's would be. The sensor tick of the demo then ingests them.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from platform_assets.samples.positions import SAMPLE_DIR, START
from resources.inboxes import NafInboxResource
from resources.warehouse import WarehouseResource

_DATE_FIELD = re.compile(r"//(DA|RD)/(\d{8})")


def shift_dates(line: str, days: int) -> str:
    """The record with its DA and RD dates moved by `days` (an impossible date stays as it is)."""

    def move(match: re.Match[str]) -> str:
        try:
            moved = datetime.strptime(match.group(2), "%Y%m%d").date() + timedelta(days=days)
        except ValueError:
            return match.group(0)
        return f"//{match.group(1)}/{moved:%Y%m%d}"

    return _DATE_FIELD.sub(move, line)


def prepare_demo(warehouse: WarehouseResource) -> None:
    """Write the two sample days, ending yesterday, into the NAF inbox (idempotent per day)."""
    write_samples(NafInboxResource().path(), datetime.now(UTC).date())


def write_samples(inbox: Path, today: date) -> list[Path]:
    """The sample files moved so that their last day is the day before `today`."""
    days = (today - timedelta(days=2) - START.date()).days
    inbox.mkdir(parents=True, exist_ok=True)
    written = []
    for sample in sorted(SAMPLE_DIR.glob("*.naf")):
        day = datetime.strptime(sample.stem.rsplit("_", 1)[1], "%Y-%m-%d").date()
        target = inbox / f"positions_{day + timedelta(days=days):%Y-%m-%d}.naf"
        if not target.exists():
            lines = sample.read_text(encoding="utf-8").splitlines()
            target.write_text("".join(shift_dates(line, days) + "\n" for line in lines))
        written.append(target)
    return written


def summary(warehouse: WarehouseResource) -> list[str]:
    """Last positions as the monitoring application lists them, and the NAF quarantine."""
    with warehouse.connect() as conn:
        last = conn.execute(
            "SELECT coalesce(vessel_name, '?'), coalesce(cfr, ircs, external_immatriculation), "
            "last_position_datetime_utc, round(latitude::numeric, 3), "
            "round(longitude::numeric, 3), is_at_port, round(emission_period_s::numeric) "
            "FROM positions.last_positions ORDER BY last_position_datetime_utc DESC LIMIT 8"
        ).fetchall()
        stored, fishing = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE is_fishing) FROM positions.positions"
        ).fetchone() or (0, 0)
        quarantined = conn.execute("SELECT count(*) FROM positions.naf_quarantine").fetchone()
    lines = [
        f"positions: {stored} stored ({fishing} fishing), "
        f"{quarantined[0] if quarantined else 0} NAF line(s) in positions.naf_quarantine",
        "last positions (vessel, identity, time, lat, lon, at port, emission period s):",
    ]
    lines += [
        f"  {name:<14} {ident:<14} {at:%Y-%m-%d %H:%M}  {lat:>7} {lon:>7}  "
        f"{'port' if port else 'sea ':<4} {period}"
        for name, ident, at, lat, lon, port, period in last
    ]
    return lines
