"""Synthetic NAF tracks for the positions storage tests (port calls, sea legs, fishing)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import h3
import psycopg

PORT = (47.6, -3.3)  # a harbour off Brittany: anchorage cells around it
START = datetime(2024, 5, 6, tzinfo=UTC)


@dataclass(frozen=True)
class Fix:
    """One position of a synthetic track."""

    cfr: str | None
    xr: str | None
    ircs: str | None
    at: datetime
    lat: float
    lon: float
    speed: float = 3.0
    course: float = 90.0

    def naf(self) -> str:
        """The NAF record of this position."""
        fields = ["SR", "TM/POS"]
        if self.cfr:
            fields.append(f"IR/{self.cfr}")
        if self.ircs:
            fields.append(f"RC/{self.ircs}")
        if self.xr:
            fields.append(f"XR/{self.xr}")
        fields += [
            "FS/FRA",
            f"DA/{self.at:%Y%m%d}",
            f"TI/{self.at:%H%M}",
            f"LT/{self.lat:.5f}",
            f"LG/{self.lon:.5f}",
            f"SP/{round(self.speed * 10)}",
            f"CO/{round(self.course) % 360}",
            "ER",
        ]
        return "//" + "//".join(fields) + "//"


def identities(count: int) -> list[tuple[str | None, str | None, str | None]]:
    """Track identities, some with missing identifiers (nulls equal within a track)."""
    out: list[tuple[str | None, str | None, str | None]] = []
    for n in range(count):
        cfr = f"FRA{n:09d}" if n % 5 != 3 else None
        xr = f"GV{n:06d}" if n % 4 != 1 else None
        ircs = f"F{n:04d}" if n % 3 != 2 or cfr is None and xr is None else None
        out.append((cfr, xr, ircs))
    return out


def tracks(vessels: int, hours: int, seed: int = 1, step_min: int = 10) -> list[Fix]:
    """Each vessel leaves port, fishes or transits, and comes back; irregular gaps included."""
    rng = random.Random(seed)
    fixes: list[Fix] = []
    for cfr, xr, ircs in identities(vessels):
        lat, lon = PORT[0] + rng.uniform(-0.0005, 0.0005), PORT[1] + rng.uniform(-0.0005, 0.0005)
        at = START + timedelta(minutes=rng.randrange(0, 60))
        heading = rng.uniform(0, 2 * math.pi)
        end = START + timedelta(hours=hours)
        leg = 0
        while at < end:
            phase = (leg // 12) % 4  # port, out, fishing, back
            speed = {0: 0.0, 1: 10.0, 2: 3.0, 3: 10.0}[phase]
            if phase == 0:
                lat, lon = (
                    PORT[0] + rng.uniform(-0.0005, 0.0005),
                    PORT[1] + rng.uniform(-0.0005, 0.0005),
                )
            else:
                sign = -1 if phase == 3 else 1
                dist_deg = speed * step_min / 60 / 60  # nautical miles -> degrees (rough)
                lat += sign * dist_deg * math.cos(heading)
                lon += sign * dist_deg * math.sin(heading) / math.cos(math.radians(lat))
            fixes.append(Fix(cfr, xr, ircs, at, round(lat, 5), round(lon, 5), speed))
            gap = step_min if rng.random() > 0.05 else step_min * rng.randrange(6, 30)
            at += timedelta(minutes=gap)
            leg += 1
    return fixes


def seed_anchorages(conn: psycopg.Connection) -> int:
    """Anchorage cells (H3 res. 9, 3 rings) around PORT in reference.anchorages."""
    cells = h3.grid_disk(h3.latlng_to_cell(PORT[0], PORT[1], 9), 3)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO reference.anchorages (h3, port_locode, distance_m, source) "
            "VALUES (%s, 'FRLRT', 0, 'port') ON CONFLICT DO NOTHING",
            [(cell,) for cell in cells],
        )
    return len(cells)
