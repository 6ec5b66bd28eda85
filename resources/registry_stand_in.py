"""Deterministic sample rows for the vessel registry source tables.

Seeds a PostgreSQL schema laid out like the Oracle source (see `source_tables`) for the embedded
default and the tests. The rows are consistent with the bundled reference files: district codes
from districts.csv, registry ports from ports.csv in the vessel's district, gears from
fishing_gear_codes.csv. Contact e-mail domains are the reserved example.* ones and telephone
numbers come from the ranges ARCEP keeps for fiction, so no real person is addressed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

#: The date the sample is "as of": licence expiries spread around it. Fixed, so runs agree.
REFERENCE_DATE = date(2026, 1, 1)

#: Registry ports of each maritime district (UN/LOCODEs from ports.csv).
DISTRICT_PORTS: dict[str, tuple[str, ...]] = {
    "DK": ("FRDKK",),
    "BL": ("FRBOL", "FRBOL", "FRBOL", "FRCQF", "FRLTR"),
    "DP": ("FRDPE", "FRLTR"),
    "FC": ("FRFEC",),
    "LH": ("FRLEH", "FRHON"),
    "CN": ("FROUI", "FRGCP"),
    "CH": ("FRCER", "FRGFR"),
    "SM": ("FRSML", "FRASM"),
    "SB": ("FRERQ", "FRSBK"),
    "PL": ("FRJPL", "FRIRR"),
    "MX": ("FRROS",),
    "BR": ("FRBES", "FRNBR"),
    "DZ": ("FRDRZ",),
    "AD": ("FRAUD",),
    "GV": ("FRGVC", "FRGVC", "FRGN2", "FRLOC"),
    "CC": ("FRCOC", "FRCOC", "FRMCC"),
    "LO": ("FRLRT", "FRLRT", "FRE29"),
    "AY": ("FRQUI", "FRBI4"),
    "VA": ("FRFAY",),
    "SN": ("FRSNR", "FRCE9"),
    "NO": ("FRCH9",),
    "YE": ("FRIDY", "FRLM7"),
    "LS": ("FRLSO",),
    "LR": ("FRLRH", "FRJLR"),
    "IO": ("FRJMN",),
    "MN": ("FRBFS", "FRRYN"),
    "BX": ("FRP9S",),
    "AC": ("FRARC",),
    "BA": ("FRBAY",),
    "PV": ("FRBPV", "FRSDS"),
    "ST": ("FRSET", "FRAGD"),
    "MT": ("FRCR2", "FRMM8"),
    "MA": ("FRMRS",),
    "TL": ("FRTLN", "FRHYR"),
    "NI": ("FRNCE",),
    "AJ": ("FRAJA",),
    "BI": ("FRBIA",),
    "PP": ("GPPTP",),
    "FF": ("MQFDF",),
    "CY": ("GFCAY",),
    "RU": ("RELPT",),
    "DI": ("YTDZA",),
}

#: How many vessels of each district, relative to the others (the big fishing quarters first).
_DISTRICT_WEIGHTS: dict[str, int] = {
    "GV": 9, "BL": 8, "LO": 7, "CC": 6, "LS": 5, "ST": 5, "SM": 4, "BR": 4, "LR": 4, "AY": 3,
    "DZ": 3, "AD": 2, "SB": 3, "PL": 2, "MX": 2, "CH": 3, "CN": 3, "DP": 3, "FC": 2, "LH": 2,
    "DK": 2, "SN": 3, "NO": 2, "YE": 2, "IO": 2, "MN": 3, "AC": 3, "BA": 3, "BX": 1, "VA": 2,
    "PV": 2, "MT": 2, "MA": 2, "TL": 2, "NI": 1, "AJ": 1, "BI": 1, "PP": 2, "FF": 2, "CY": 1,
    "RU": 2, "DI": 1,
}  # fmt: skip

_MEDITERRANEAN = frozenset({"PV", "ST", "MT", "MA", "TL", "NI", "AJ", "BI"})
_OVERSEAS = frozenset({"PP", "FF", "CY", "RU", "DI"})


@dataclass(frozen=True)
class _Profile:
    """A kind of vessel: its type, the gears it may declare, and its usual length range."""

    vessel_type: str
    gears: tuple[str, ...]
    min_length: float
    max_length: float
    max_gears: int


_LINER = _Profile("Ligneur", ("LHP", "LHM", "LTL"), 5.5, 12.0, 3)
_PROFILES: tuple[tuple[int, _Profile], ...] = (
    (20, _Profile("Chalutier de fond", ("OTB", "OTT", "PTB", "TBN"), 12.0, 25.0, 2)),
    (4, _Profile("Chalutier pélagique", ("OTM", "PTM", "OTB"), 18.0, 45.0, 2)),
    (18, _Profile("Fileyeur", ("GNS", "GTR", "GND", "GTN"), 7.0, 18.0, 3)),
    (14, _Profile("Caseyeur", ("FPO", "GNS", "LHP"), 6.0, 14.0, 2)),
    (8, _Profile("Palangrier", ("LLS", "LLD", "LHM"), 9.0, 22.0, 2)),
    (10, _LINER),
    (6, _Profile("Dragueur", ("DRB", "HMD", "DRH"), 9.0, 16.0, 2)),
    (5, _Profile("Senneur", ("PS", "SDN", "SSC", "LA"), 12.0, 28.0, 2)),
    (12, _Profile("Navire polyvalent", ("OTB", "GNS", "FPO", "DRB", "LHP", "LLS"), 8.0, 16.0, 3)),
    (2, _Profile("Chalutier à perche", ("TBB",), 20.0, 38.0, 1)),
)
# Ocean-going tropical tuna seiners, registered in Concarneau.
_TUNA_SEINER = _Profile("Senneur thonier océanique", ("PS",), 70.0, 90.0, 1)

_NAMES = (
    "L'ESPERANCE", "NOTRE-DAME DE ROCAMADOUR", "AR VAG", "MARIE-CATHERINE", "LE PETIT POUCET",
    "BARA BREIZH", "AVEL VOR", "SAINT-PIERRE", "LES DEUX FRERES", "ANNE-SOPHIE", "KORRIGAN",
    "MOR BIHAN", "L'AUDACIEUX", "ETOILE DE LA MER", "PENN AR BED", "JEAN-PIERRE", "LE GOELAND",
    "SIRIUS", "ORION", "ALBATROS", "LA BELLE POULE", "ROSE DES VENTS", "CAP SIZUN", "LE CORMORAN",
    "KERMOR", "LES COPAINS D'ABORD", "MARIE-MADELEINE", "ENEZ EUSSA", "STER VRAZ", "PAPY JO",
    "L'OCEANE", "PHAROS", "GWALARN", "LE MAGELLAN", "SAINTE-ANNE", "LA MOUETTE", "ENTRE NOUS",
    "IROISE", "GLENAN", "L'ARGONAUTE", "MARINE", "NOUVELLE VAGUE", "BREIZH IZEL", "LE FOU DE BASSAN",
    "AMARYLLIS", "L'OISEAU BLEU", "FILS DE LA MER", "SOIZIC", "TI KAZ", "LA CALYPSO", "ARMORIQUE",
    "HERMINE", "L'ALIZE", "MISTRAL", "TRAMONTANE", "LOU PESCADOU", "MARE NOSTRUM", "SANT ANTONI",
    "LA CIGALE", "U PESCADORE", "KARUKERA", "MADININA", "FLEUR DE CAYENNE", "BOURBON", "MAORE",
)  # fmt: skip

_SURNAMES = (
    "LE GALL", "LE BERRE", "TANGUY", "LE GOFF", "KERVELLA", "GUEGUEN", "LE BRIS", "QUEMENER",
    "LE CORRE", "MORVAN", "CALVEZ", "PRIGENT", "DUPONT", "LEROY", "DUBOIS", "MARTIN", "BERNARD",
    "LEFEBVRE", "DELPIERRE", "FOURNIER", "GIRARD", "BONNET", "ROUSSEL", "GARCIA", "MARTINEZ",
    "ROCCA", "SANTONI", "GRIMAUD", "BARRAL", "JOSEPH", "ETIENNE", "PAYET", "HOARAU",
)  # fmt: skip
_FIRST_NAMES = (
    "JEAN", "YANN", "LOIC", "ERWAN", "PATRICK", "SOPHIE", "MARIE", "GWENAELLE", "PIERRE",
    "THIERRY", "NICOLAS", "CLAIRE", "ANNE", "HERVE", "JULIEN", "SEBASTIEN", "MATHILDE", "PASCAL",
)  # fmt: skip
_COMPANY_FORMS = ("SARL", "SAS", "EURL", "SA", "SCEA")
_COMPANY_NAMES = (
    "ARMEMENT BIGOUDEN", "PECHERIES DE L'IROISE", "ARMEMENT DE LA COTE D'OPALE",
    "ARMEMENT LORIENTAIS", "PECHE ET TRADITION", "ARMEMENT VENDEEN", "MAREE DU PONANT",
    "ARMEMENT CONCARNOIS", "COMPAGNIE DES PECHES SETOISES", "ARMEMENT DU GOLFE",
    "PECHERIES NORMANDES", "ARMEMENT BASQUE", "ARMEMENT DE LA MER D'IROISE", "THONIERS DU LARGE",
)  # fmt: skip
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net")


def sample_vessel_rows(n: int = 300, seed: int = 7) -> dict[str, list[dict[str, Any]]]:
    """`n` vessels and their contacts, licences and declared gears, keyed by source table name.

    Same `n` and `seed`, same rows. Insert in `source_tables(...).metadata.sorted_tables` order;
    each dict is keyed by column name.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    districts = list(_DISTRICT_WEIGHTS)
    weights = [_DISTRICT_WEIGHTS[d] for d in districts]
    profile_weights = [w for w, _ in _PROFILES]

    vessels: list[dict[str, Any]] = []
    contacts: list[dict[str, Any]] = []
    licences: list[dict[str, Any]] = []
    gears: list[dict[str, Any]] = []
    used = _Unique(rng)
    contact_ids = iter(range(1, 10 * n + 10))
    licence_ids = iter(range(1, 10 * n + 10))

    for index in range(n):
        vessel_id = index + 1
        district = rng.choices(districts, weights)[0]
        profile = _profile_for(rng, district, profile_weights)
        if profile is _TUNA_SEINER:
            district = "CC"
        length = round(rng.uniform(profile.min_length, profile.max_length), 2)
        width = round(length * rng.uniform(0.27, 0.36), 2)
        gauge = round(0.012 * length**2.8 * rng.uniform(0.85, 1.45), 2)
        power = round(2.2 * length**1.75 * rng.uniform(0.7, 1.3), 2)
        has_ais = length >= 15.0 or rng.random() < 0.45
        vessels.append(
            {
                "ID_NAVIRE": vessel_id,
                "CFR": used.cfr(),
                "MMSI": used.mmsi() if has_ais else None,
                "IRCS": used.ircs() if length >= 10.0 or rng.random() < 0.5 else None,
                "IMMATRICULATION_EXT": used.marking(district),
                "NOM_NAVIRE": used.name(),
                "PAVILLON": "FR",
                "LONGUEUR": length,
                "LARGEUR": width,
                "JAUGE": gauge,
                "PUISSANCE": power,
                "TYPE_NAVIRE": profile.vessel_type,
                "CATEGORIE_NAVIGATION": _sailing_category(rng, length),
                "CODE_QUARTIER": district,
                "LOCODE_PORT_ATTACHE": rng.choice(DISTRICT_PORTS[district]),
                "EST_ACTIF": 0 if rng.random() < 0.08 else 1,
            }
        )

        count = rng.randint(1, profile.max_gears)
        for rank, code in enumerate(rng.sample(profile.gears, min(count, len(profile.gears))), 1):
            gears.append({"ID_NAVIRE": vessel_id, "CODE_ENGIN": code, "RANG": rank})

        contacts.extend(_contacts(rng, vessel_id, length, contact_ids))
        licences.extend(_licences(rng, vessel_id, district, licence_ids))

    return {
        "NAVIRES": vessels,
        "NAVIRES_CONTACTS": contacts,
        "NAVIRES_PERMIS": licences,
        "NAVIRES_ENGINS": gears,
    }


def _profile_for(rng: random.Random, district: str, weights: list[int]) -> _Profile:
    if district == "CC" and rng.random() < 0.15:
        return _TUNA_SEINER
    profile = rng.choices([p for _, p in _PROFILES], weights)[0]
    # No beam trawlers in the Mediterranean or overseas; small boats dominate overseas.
    if profile.vessel_type == "Chalutier à perche" and (district in _MEDITERRANEAN | _OVERSEAS):
        return _LINER
    if district in _OVERSEAS and profile.max_length > 20.0:
        return _LINER
    return profile


def _sailing_category(rng: random.Random, length: float) -> str:
    if length >= 40.0:
        return "1ère"
    if length >= 24.0:
        return rng.choice(("1ère", "2ème"))
    if length >= 12.0:
        return rng.choice(("2ème", "3ème"))
    return rng.choice(("4ème", "4ème", "5ème"))


def _contacts(rng: random.Random, vessel_id: int, length: float, ids: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    # A few vessels have an older owner registration: the query must keep the latest one.
    owners = 0 if rng.random() < 0.03 else (2 if rng.random() < 0.2 else 1)
    for _ in range(owners):
        rows.append(_contact(rng, next(ids), vessel_id, "OWNER", company=length >= 18.0))
    if rng.random() < 0.7:
        rows.append(_contact(rng, next(ids), vessel_id, "OPERATOR", company=True))
    return rows


def _contact(
    rng: random.Random, contact_id: int, vessel_id: int, role: str, *, company: bool
) -> dict[str, Any]:
    if company:
        name = f"{rng.choice(_COMPANY_FORMS)} {rng.choice(_COMPANY_NAMES)}"
        local = "contact." + _slug(name.split(" ", 1)[1])
    else:
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_SURNAMES)
        name = f"{last} {first}"
        local = f"{_slug(first)}.{_slug(last)}"
    email = f"{local}@{rng.choice(_EMAIL_DOMAINS)}" if rng.random() < 0.85 else None
    # ARCEP's numbers for fiction: 01 99 00, 02 61 91, 03 53 01, 04 65 71, 05 36 49, 06 39 98.
    prefix = rng.choice(("2 61 91", "6 39 98", "4 65 71", "5 36 49"))
    phone = f"+33 {prefix} {rng.randint(0, 99):02d} {rng.randint(0, 99):02d}"
    return {
        "ID_CONTACT": contact_id,
        "ID_NAVIRE": vessel_id,
        "ROLE": role,
        "NOM": name,
        "EMAIL": email,
        "TELEPHONE": phone if rng.random() < 0.9 else None,
    }


def _licences(rng: random.Random, vessel_id: int, district: str, ids: Any) -> list[dict[str, Any]]:
    if rng.random() < 0.08:
        return []
    rows: list[dict[str, Any]] = []
    # The current licence expires between one year ago and two years ahead; some have a past one.
    expiry = REFERENCE_DATE + timedelta(days=rng.randint(-365, 730))
    start = expiry - timedelta(days=rng.choice((365, 730, 1095)))
    periods = [(start, expiry)]
    if rng.random() < 0.35:
        periods.insert(0, (start - timedelta(days=1095), start - timedelta(days=1)))
    for begin, end in periods:
        licence_id = next(ids)
        rows.append(
            {
                "ID_PERMIS": licence_id,
                "ID_NAVIRE": vessel_id,
                "NUMERO_PERMIS": f"PPS-{district}-{begin.year}-{licence_id:06d}",
                "DATE_DEBUT": begin,
                "DATE_EXPIRATION": end,
            }
        )
    return rows


def _slug(text: str) -> str:
    kept = "".join(ch if ch.isalnum() else "-" for ch in text.lower())
    return "-".join(part for part in kept.split("-") if part)


class _Unique:
    """Draws identifiers that never repeat within one sample."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._seen: set[str] = set()
        self._names: dict[str, int] = {}

    def _draw(self, make: Any) -> str:
        while True:
            value = make()
            if value not in self._seen:
                self._seen.add(value)
                return str(value)

    def cfr(self) -> str:
        return self._draw(lambda: f"FRA000{self._rng.randint(100_000, 999_999)}")

    def mmsi(self) -> str:
        return self._draw(
            lambda: f"{self._rng.choice((227, 228))}{self._rng.randint(0, 999_999):06d}"
        )

    def ircs(self) -> str:
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        return self._draw(
            lambda: "F" + "".join(self._rng.choices(letters, k=3)) + str(self._rng.randint(0, 9))
        )

    def marking(self, district: str) -> str:
        return self._draw(lambda: f"{district} {self._rng.randint(100_000, 999_999)}")

    def name(self) -> str:
        base = self._rng.choice(_NAMES)
        count = self._names.get(base, 0) + 1
        self._names[base] = count
        suffixes = ("", " II", " III", " IV", " V", " VI", " VII", " VIII", " IX", " X")
        return base + (suffixes[count - 1] if count <= len(suffixes) else f" {count}")
