"""Sample NAF position files for the demo: seven vessels over two days off southern Brittany.

Deterministic (same seed, same bytes); `python -m platform_assets.samples.positions` rewrites
`platform_assets/samples/naf/*.naf`, which are committed. What the files show:

- SAINT-PIERRE stays in Lorient (at port all along, every 30 min);
- GLENAN and ENEZ EUSSA leave Le Guilvinec / Concarneau each morning, steam out, trawl at
  2.5-3.5 kn, come back in the evening (every 15 min);
- AVEL VOR steams out of Douarnenez straight through 47.5N 4.5W and trawls within 3 km of it for
  six hours (the alerts demo draws a closed zone there), then goes to Lorient;
- AR VAG trawls west of Glenan and is silent for seven hours on the first night;
- KARUKERA (no call sign) steams from Brest to the Bay of Biscay, hourly;
- a Spanish vessel reports through another provider: LA/LO degrees-minutes, `//ER` endings,
  MS/SAT, hourly; it is not in the French registry.

Identities of the first six are those of the sample registry's vessels 1-5 and 7
(`resources.registry_stand_in.sample_vessel_rows`), so the demo resolves them. The second day's
file also holds one record of the first day (late), one exact duplicate line and, across both
files, three malformed lines (truncated, 30 February, latitude 95) for the quarantine.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pyproj import Geod

SAMPLE_DIR = Path(__file__).parent / "naf"
START = datetime(2025, 3, 3, tzinfo=UTC)
DAYS = 2
ZONE_CENTRE = (47.5, -4.5)  # (lat, lon) the zone-crossing vessel fishes around

_GEOD = Geod(ellps="WGS84")
_PORTS = {  # reference/data/ports.csv
    "FRLRT": (47.7347, -3.3614),
    "FRGVC": (47.7955, -4.2845),
    "FRCOC": (47.8720, -3.9140),
    "FRDRZ": (48.0990, -4.3270),
    "FRBES": (48.3830, -4.4870),
}


@dataclass(frozen=True)
class _Vessel:
    cfr: str | None
    ircs: str | None
    marking: str | None
    name: str
    flag: str  # alpha-3
    every_min: int
    plan: tuple[tuple[object, ...], ...]  # ("port", hours, locode) | ("steam", (lat, lon), kn)
    # | ("fish", hours, (lat, lon), radius_m)
    silent: tuple[float, float] | None = None  # hours after START without emission
    degrees_minutes: bool = False
    start: tuple[float, float] = _PORTS["FRGVC"]  # where a plan not starting at port begins


def _day_trip(home: str, ground: tuple[float, float], leave_h: float, fish_h: float) -> tuple:
    return (
        ("port", leave_h, home),
        ("steam", ground, 10.0),
        ("fish", fish_h, ground, 4000.0),
        ("steam", _PORTS[home], 10.5),
        ("port", 24.0, home),
    )


_VESSELS = (
    _Vessel("FRA000160816", "FCKG8", "ST 545140", "SAINT-PIERRE", "FRA", 30,
            (("port", 48.0, "FRLRT"),)),
    _Vessel("FRA000575198", "FGEU1", "GV 702326", "GLENAN", "FRA", 15,
            _day_trip("FRGVC", (47.55, -4.20), 4.0, 8.0)
            + (("steam", (47.60, -4.05), 10.0), ("fish", 7.0, (47.60, -4.05), 4000.0),
               ("steam", _PORTS["FRGVC"], 10.0), ("port", 24.0, "FRGVC"))),
    _Vessel("FRA000801133", "FYJP7", "GV 161818", "ENEZ EUSSA", "FRA", 15,
            _day_trip("FRCOC", (47.62, -3.80), 5.0, 7.0)),
    _Vessel("FRA000104292", "FNPI2", "LO 824035", "AVEL VOR", "FRA", 15,
            (("port", 6.0, "FRDRZ"), ("steam", (47.62, -4.52), 10.0), ("steam", ZONE_CENTRE, 9.0),
             ("fish", 6.0, ZONE_CENTRE, 3000.0), ("steam", (47.45, -4.30), 9.0),
             ("steam", _PORTS["FRLRT"], 10.0), ("port", 48.0, "FRLRT"))),
    _Vessel("FRA000427000", "FCIG2", "FF 641415", "AR VAG", "FRA", 20,
            (("steam", (47.66, -4.25), 8.0), ("fish", 60.0, (47.66, -4.25), 5000.0)),
            silent=(20.0, 27.0)),
    _Vessel("FRA000253274", None, "PP 724815", "KARUKERA", "FRA", 60,
            (("port", 2.0, "FRBES"), ("steam", (47.90, -5.10), 11.0), ("steam", (45.50, -3.00), 11.0),
             ("fish", 48.0, (45.50, -3.00), 8000.0))),
    _Vessel("ESP000022941", "EAWB", "BI 99731", "PLAYA DE TUYA", "ESP", 60,
            (("steam", (46.80, -5.50), 9.0), ("fish", 48.0, (46.80, -5.50), 6000.0)),
            degrees_minutes=True, start=(46.2, -6.3)),
)  # fmt: skip


def sample_naf_files(seed: int = 2025) -> dict[str, list[str]]:
    """File name -> its lines (no line breaks): one file per day, records in time order except
    the planted late record, duplicate and malformed lines."""
    rng = random.Random(seed)
    records: list[tuple[datetime, str]] = []
    for vessel in _VESSELS:
        for when, lat, lon, speed, course in _track(vessel, rng):
            records.append((when, _record(vessel, when, lat, lon, speed, course)))
    records.sort(key=lambda item: item[0])
    files: dict[str, list[str]] = {}
    for day in range(DAYS):
        begin = START + timedelta(days=day)
        lines = [line for when, line in records if begin <= when < begin + timedelta(days=1)]
        files[f"positions_{begin:%Y-%m-%d}.naf"] = lines
    first, second = files.values()
    first.insert(len(first) // 3, first[len(first) // 3][:-12])  # truncated: no //ER//
    first.insert(len(first) // 2, first[10].replace("//DA/20250303", "//DA/20250230"))
    late = first.pop(len(first) - 5)  # a first-day record that arrives with the second day
    second.insert(40, late)
    second.insert(60, second[59])  # the same record sent twice
    second.insert(len(second) // 2, second[20].replace("//LT/", "//LT/95.0//XX/"))
    return files


def write_sample_naf(directory: Path = SAMPLE_DIR, seed: int = 2025) -> list[Path]:
    """Write the sample files (LF line ends, UTF-8) and return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, lines in sample_naf_files(seed).items():
        path = directory / name
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        paths.append(path)
    return paths


def _track(
    vessel: _Vessel, rng: random.Random
) -> Iterator[tuple[datetime, float, float, float, float]]:
    """Positions at each emission instant, following the vessel's plan."""
    step_h = vessel.every_min / 60
    plan = list(vessel.plan)
    lat, lon = _PORTS[str(plan[0][2])] if plan[0][0] == "port" else vessel.start
    heading = rng.uniform(0, 360)
    elapsed, in_segment = 0.0, 0.0
    end_h = DAYS * 24.0
    while elapsed < end_h and plan:
        kind = plan[0][0]
        speed = course = 0.0
        if kind == "port":
            _, hours, locode = plan[0]
            port_lat, port_lon = _PORTS[str(locode)]
            lat = port_lat + rng.uniform(-0.0006, 0.0006)
            lon = port_lon + rng.uniform(-0.0008, 0.0008)
            speed, course = round(rng.uniform(0, 0.2), 1), rng.uniform(0, 359)
            done = in_segment >= float(hours)  # type: ignore[arg-type]
        elif kind == "steam":
            _, target, knots = plan[0]
            course, _, remaining = _GEOD.inv(lon, lat, target[1], target[0])  # type: ignore[index]
            speed = float(knots) + rng.uniform(-0.5, 0.5)  # type: ignore[arg-type]
            distance = speed * 1852 * step_h
            if remaining <= distance:
                lat, lon = target  # type: ignore[misc]
                done = True
            else:
                lon, lat, _ = _GEOD.fwd(lon, lat, course, distance)
                done = False
        else:  # fish: slow zig-zag, turned back towards the ground's centre beyond its radius
            _, hours, centre, radius = plan[0]
            to_centre, _, away = _GEOD.inv(lon, lat, centre[1], centre[0])  # type: ignore[index]
            heading = to_centre if away > radius else heading + rng.uniform(-50, 50)  # type: ignore[operator]
            speed = rng.uniform(2.5, 3.5)
            course = heading % 360
            lon, lat, _ = _GEOD.fwd(lon, lat, course, speed * 1852 * step_h)
            done = in_segment >= float(hours)  # type: ignore[arg-type]
        when = START + timedelta(hours=elapsed)
        silent = vessel.silent is not None and vessel.silent[0] <= elapsed < vessel.silent[1]
        if not silent:
            yield when, lat, lon, speed, course % 360
        elapsed += step_h
        in_segment += step_h
        if done:
            plan.pop(0)
            in_segment = 0.0


def _record(
    vessel: _Vessel, when: datetime, lat: float, lon: float, speed: float, course: float
) -> str:
    fields: list[tuple[str, str | None]] = [("AD", "FRA"), ("FR", vessel.flag), ("TM", "POS")]
    fields += [("RC", vessel.ircs), ("IR", vessel.cfr), ("XR", vessel.marking)]
    fields += [("NA", vessel.name), ("FS", vessel.flag)]
    fields += [("DA", f"{when:%Y%m%d}"), ("TI", f"{when:%H%M}")]
    if vessel.degrees_minutes:
        fields += [("LA", _dm(lat, "NS", 2)), ("LO", _dm(lon, "EW", 3))]
    else:
        fields += [("LT", f"{lat:+.4f}"), ("LG", f"{lon:+09.4f}")]
    fields += [("SP", f"{round(speed * 10):d}"), ("CO", f"{round(course) % 360:03d}")]
    if vessel.degrees_minutes:
        fields.append(("MS", "SAT"))
    body = "//".join(f"{code}/{value}" for code, value in fields if value is not None)
    return "//SR//" + body + ("//ER" if vessel.degrees_minutes else "//ER//")


def _dm(value: float, letters: str, width: int) -> str:
    minutes_total = round(abs(value) * 60)
    degrees, minutes = divmod(minutes_total, 60)
    return f"{letters[1] if value < 0 else letters[0]}{degrees:0{width}d}{minutes:02d}"


if __name__ == "__main__":
    for written in write_sample_naf():
        print(written)
