"""Sample ERS3 logbook traffic written for the project: whole fishing trips, deterministic.

Used by the demo (an inbox archive), by tests that need realistic messages, and by the ingestion
benchmark (any number of messages). A trip is DEP, FAR hauls, PNO, LAN, with a correction, a
deletion and acknowledgements (RET) of the hub, as a vessel and the French hub would send them.
"""

from __future__ import annotations

import io
import random
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

NS = "http://ec.europa.eu/fisheries/schema/ers/v3"
SPECIES = ("SOL", "HKE", "ANF", "MEG", "BSS", "COD", "MAC", "NEP", "LEZ", "WHG")
PORTS = ("FRLRH", "FRLRT", "FRCOC", "FRGVC", "FRBOL", "FRBES", "FRSML", "ESVGO")
AREAS = (("27", "8", "a", "23E6"), ("27", "7", "e", "25E5"), ("27", "8", "b", "19E8"))
GEARS = (("OTB", 80), ("PTB", 120), ("GNS", 100), ("OTT", 90))


@dataclass(frozen=True)
class SampleVessel:
    """Identity of a sample vessel as logbooks carry it."""

    cfr: str
    ircs: str
    external_marking: str
    name: str


def sample_vessels(n: int, seed: int = 11) -> list[SampleVessel]:
    """Deterministic vessel identities (CFR FRA + 9 digits, call signs, markings)."""
    rng = random.Random(seed)
    names = ("LE BRAVE", "MARIE-ANNE", "AVEL MOR", "SAINT-PIERRE", "KERLOC'H", "ANDREA", "ZEPHYR")
    return [
        SampleVessel(
            cfr=f"FRA{100000000 + i:09d}",
            ircs=f"F{chr(65 + i % 26)}{chr(65 + (i // 26) % 26)}{i % 10}",
            external_marking=f"{rng.choice(('LR', 'LO', 'CC', 'GV', 'BL'))} {900000 + i}",
            name=f"{rng.choice(names)} {i % 9 + 1}",
        )
        for i in range(n)
    ]


def _ops(
    on: str, at: datetime, body: str, sender: str = "OOF", software: str = "fishnet-sample 1.0"
) -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><ers:OPS xmlns:ers="{NS}" AD="FRA" FR="{sender}" '
        f'ON="{on}" OD="{at:%Y-%m-%d}" OT="{at:%H:%M}" EVL="{software}">{body}</ers:OPS>'
    )


def _log(vessel: SampleVessel, rn: str, at: datetime, content: str, trip: str) -> str:
    return (
        f'<ers:ERS RN="{rn}" RD="{at:%Y-%m-%d}" RT="{at:%H:%M}">'
        f'<ers:LOG IR="{vessel.cfr}" RC="{vessel.ircs}" XR="{vessel.external_marking}" '
        f'NA="{vessel.name}" MA="Armement Exemple" MD="Quai Est" FS="FRA">{content}'
        f'<ers:ELOG Type="nat" CH="FRA" TN="{trip}"/></ers:LOG></ers:ERS>'
    )


def _catch(rng: random.Random, species: list[str], area: tuple[str, str, str, str]) -> str:
    fa, sa, id_, sr = area
    return "".join(
        f'<ers:SPE SN="{sn}" WT="{rng.randint(20, 900)}.{rng.randint(0, 9)}">'
        f'<ers:RAS FA="{fa}" SA="{sa}" ID="{id_}" EZ="FRA" SR="{sr}"/></ers:SPE>'
        for sn in species
    )


class _Numbers:
    """Operation numbers as the hubs allocate them: prefix, date, sequence."""

    def __init__(self) -> None:
        self.sequence = 0

    def next(self, prefix: str, at: datetime) -> str:
        self.sequence += 1
        return f"{prefix}{at:%Y%m%d}{self.sequence:06d}"


def trip_messages(
    vessel: SampleVessel,
    start: datetime,
    trip_number: str,
    rng: random.Random,
    numbers: _Numbers,
    hauls: int = 3,
) -> Iterator[tuple[str, str]]:
    """(operation number, XML) of one trip, in sending order, with a COR, a DEL and RETs."""
    gear, mesh = rng.choice(GEARS)
    area = rng.choice(AREAS)
    port = rng.choice(PORTS)
    at = start

    def send(content: str) -> tuple[str, str]:
        on = numbers.next("OOF", at)
        return on, _ops(
            on, at, f'<ers:DAT TM="CU">{_log(vessel, on, at, content, trip_number)}</ers:DAT>'
        )

    def ack(on: str, status: str = "000") -> tuple[str, str]:
        ret_on = numbers.next("FRA", at)
        return ret_on, _ops(
            ret_on,
            at + timedelta(minutes=1),
            f'<ers:RET RS="{status}" ON="{on}" RE=""/>',
            sender="FRA",
            software="",
        )

    dep = send(
        f'<ers:DEP DA="{at:%Y-%m-%d}" TI="{at:%H:%M}" PO="{port}" AA="FSH">'
        f'<ers:GEA GE="{gear}" ME="{mesh}" GC="{mesh}.0"/></ers:DEP>'
    )
    yield dep
    yield ack(dep[0])
    far_numbers = []
    for haul in range(hauls):
        at += timedelta(hours=rng.randint(3, 9))
        species = rng.sample(SPECIES, rng.randint(1, 4))
        far = send(
            f'<ers:FAR DA="{at:%Y-%m-%d}" TI="{at:%H:%M}"><ers:GEA GE="{gear}" ME="{mesh}"/>'
            f"{_catch(rng, species, area)}</ers:FAR>"
        )
        far_numbers.append(far[0])
        yield far
        yield ack(far[0], "000" if haul else rng.choice(("000", "002")))
    # the skipper corrects the first haul, then deletes the second
    at += timedelta(minutes=30)
    cor_on = numbers.next("OOF", at)
    content = (
        f'<ers:FAR DA="{at:%Y-%m-%d}" TI="{at:%H:%M}"><ers:GEA GE="{gear}" ME="{mesh}"/>'
        f"{_catch(rng, ['SOL', 'HKE'], area)}</ers:FAR>"
    )
    yield (
        cor_on,
        _ops(
            cor_on,
            at,
            f'<ers:COR RN="{far_numbers[0]}" RE="poids">{_log(vessel, cor_on, at, content, trip_number)}</ers:COR>',
        ),
    )
    yield ack(cor_on)
    if len(far_numbers) > 1:
        del_on = numbers.next("OOF", at)
        yield del_on, _ops(del_on, at, f'<ers:DEL RN="{far_numbers[1]}" RE="erreur"/>')
    at += timedelta(hours=6)
    landing = _catch(rng, rng.sample(SPECIES, 3), area)
    yield send(
        f'<ers:PNO PD="{at + timedelta(hours=4):%Y-%m-%d}" PT="{at + timedelta(hours=4):%H:%M}" '
        f'PO="{port}" DA="{at:%Y-%m-%d}" TI="{at:%H:%M}" PC="LAN">{landing}</ers:PNO>'
    )
    at += timedelta(hours=4)
    lan = send(
        f'<ers:LAN DA="{at:%Y-%m-%d}" TI="{at:%H:%M}" TS="MAS" PO="{port}">{landing}</ers:LAN>'
    )
    yield lan
    yield ack(lan[0])


def sample_messages(
    count: int, seed: int = 3, start: datetime = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
) -> list[tuple[str, str]]:
    """`count` messages of whole trips by a fleet (deterministic for a seed)."""
    rng = random.Random(seed)
    numbers = _Numbers()
    vessels = sample_vessels(max(1, min(500, count // 10)), seed)
    out: list[tuple[str, str]] = []
    trip = 0
    while len(out) < count:
        vessel = vessels[trip % len(vessels)]
        day = start + timedelta(days=trip // len(vessels), hours=rng.randint(0, 12))
        out.extend(trip_messages(vessel, day, f"2026{trip:05d}", rng, numbers))
        trip += 1
    return out[:count]


MALFORMED = (
    b'<?xml version="1.0"?><ers:OPS xmlns:ers="'
    + NS.encode()
    + b'" AD="FRA" FR="OOF" OD="2026-03-02" OT="10:00"><ers:DAT TM="CU"/></ers:OPS>'
)


def write_sample_archive(path: Path, count: int = 40, seed: int = 3) -> Path:
    """A zip like the hub drops: sample messages plus one without an operation number."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for on, xml in sample_messages(count, seed):
            archive.writestr(f"{on}.xml", xml)
        archive.writestr("UNKNOWN_missing_operation_number.xml", MALFORMED)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".part")  # hidden while being written
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)
    return path
