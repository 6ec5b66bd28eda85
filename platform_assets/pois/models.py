"""The common POI models every source is transformed into, with their `transform_*` methods.

Shape of one record: `RegisteredPoi` (the POI as one source sees it: source, original id, content
hash) holds a `Poi`, which holds its `AddressPoi` links (each with its `Address`) and its
`Activity` list. Every method whose name starts with `transform_` is a step of the generic
transform (platform_assets/pois/transform.py finds and runs them; no list to maintain): it takes
a `TransformContext`, fixes the instance in place, and raises `TransformError` when the item
cannot be made valid. Methods of a class run in definition order; a record's children are
transformed before their parents, so `RegisteredPoi.transform_content_hash` sees the final record.

A class may also have `prepare_*` classmethods, discovered the same way: each runs once per batch
with every instance of the class in the batch, before any step, to do in one call what the steps
would otherwise ask item by item (`Address.prepare_get_address` geocodes all the batch's points
in one vectorised query or batched API requests; `transform_get_address` then reads the answer).

Steps assign a field only when its value changes: a pydantic assignment is a Python call, and
most values are already clean.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from resources.geocoder_client import Geocoder, Place, Point


class TransformError(ValueError):
    """A `transform_*` step could not make an item valid (the message says why)."""


@dataclass
class TransformContext:
    """What transform steps may use: the geocoder and the places already looked up."""

    geocoder: Geocoder | None = None
    places: dict[Point, Place | None] = field(default_factory=dict)

    def prefetch(self, points: list[Point]) -> None:
        """Geocode many points in one call (batched API requests, one vectorised tree query)."""
        todo = list(dict.fromkeys(p for p in points if p not in self.places))
        if todo and self.geocoder is not None:
            self.places.update(zip(todo, self.geocoder.reverse_many(todo), strict=True))

    def place_at(self, point: Point) -> Place | None:
        """The place at a point (asked now if it was not prefetched)."""
        if point not in self.places:
            if self.geocoder is None:
                raise TransformError("no geocoder configured")
            self.places[point] = self.geocoder.reverse_many([point])[0]
        return self.places[point]


# --- text helpers ----------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SMALL_WORDS = frozenset(
    [
        "a",
        "à",
        "au",
        "aux",
        "d",
        "de",
        "des",
        "du",
        "en",
        "et",
        "l",
        "la",
        "le",
        "les",
        "sur",
        "sous",
        "pour",
        "par",
        "the",
        "of",
        "and",
    ]
)
# INSEE commune codes: departments 01-19, 21-95 (no 20 since 1976: Corsica is 2A/2B), overseas 97x
_URL = re.compile(r"(?i)(https?://)([^/]+)(.*)")
INSEE_CODE = re.compile(r"(?:0[1-9]|1\d|2[1-9]|[3-8]\d|9[0-5])\d{3}|2[AB]\d{3}|97[1-8]\d{2}")


def clean_text(value: str | None) -> str | None:
    """NFC, no control characters, single spaces, stripped; empty becomes None."""
    if value is None:
        return None
    text = value
    if not text.isprintable():  # rare: control characters (tabs and newlines are spaces below)
        text = _CONTROL.sub("", text)
    if not text.isascii() and not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    if "  " in text or not text.isprintable() or text[:1].isspace() or text[-1:].isspace():
        text = " ".join(text.split())  # str.split() and regex \s agree on what a space is
    return text or None


def _capitalise(word: str, first: bool) -> str:
    if not first and word.lower() in _SMALL_WORDS:
        return word.lower()
    return "-".join(part[:1].upper() + part[1:].lower() for part in word.split("-"))


@functools.lru_cache(maxsize=65_536)
def normalise_name(value: str) -> str:
    """A display name: clean text, and SHOUTED NAMES put in title case (small words lowered)."""
    text = clean_text(value) or ""
    if text.isupper() and sum(c.isalpha() for c in text) > 3:
        text = " ".join(_capitalise(w, i == 0) for i, w in enumerate(text.split(" ")))
    return text


@functools.lru_cache(maxsize=65_536)
def ascii_slug(value: str) -> str:
    """lower-case ASCII words joined by '_' (for controlled vocabularies)."""
    decomposed = unicodedata.normalize("NFKD", value)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return "_".join(re.findall(r"[a-z0-9]+", plain))


@functools.lru_cache(maxsize=65_536)
def normalise_insee_code(value: str | None) -> str:
    """The 5-character INSEE commune code, or TransformError saying what is wrong with it."""
    if value is None or not str(value).strip():
        raise TransformError("missing INSEE commune code")
    code = str(value).strip().upper()
    if code.isdigit() and len(code) == 4:
        code = "0" + code  # a spreadsheet ate the leading zero of departments 01-09
    if not INSEE_CODE.fullmatch(code):
        if re.fullmatch(r"20\d{3}", code):
            raise TransformError(
                f"INSEE code {code!r}: Corsican communes are 2A/2B (20xxx is a postcode)"
            )
        raise TransformError(f"invalid INSEE commune code {code!r}")
    return code


SPORTS = {
    "course_a_pied": "running",
    "running": "running",
    "run": "running",
    "course": "running",
    "road_running": "running",
    "trail": "trail_running",
    "trail_running": "trail_running",
    "ultra_trail": "trail_running",
    "marche": "walking",
    "randonnee": "hiking",
    "hiking": "hiking",
    "velo": "cycling",
    "cyclisme": "cycling",
    "cycling": "cycling",
    "vtt": "mountain_biking",
    "mountain_bike": "mountain_biking",
    "natation": "swimming",
    "swimming": "swimming",
    "piscine": "swimming",
    "triathlon": "triathlon",
    "duathlon": "duathlon",
    "football": "football",
    "tennis": "tennis",
    "escalade": "climbing",
    "climbing": "climbing",
    "ski": "skiing",
    "ski_de_fond": "cross_country_skiing",
    "athletisme": "athletics",
    "stade": "athletics",
}


# --- the models --------------------------------------------------------------------------------


class Address(BaseModel):
    """Where a POI is: coordinates, and the address reverse geocoding gives them."""

    model_config = ConfigDict(extra="forbid")

    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    street: str | None = None
    postcode: str | None = None
    city: str | None = None
    insee_code: str | None = None
    label: str | None = None

    @classmethod
    def prepare_get_address(cls, instances: list[Address], context: TransformContext) -> None:
        """Batch hook: geocode in one call the points `transform_get_address` will look up."""
        context.prefetch([(a.latitude, a.longitude) for a in instances if not a.insee_code])

    def transform_get_address(self, context: TransformContext) -> None:
        """Reverse geocoding: fill the commune (and what else the geocoder knows) when missing."""
        if self.insee_code:
            return
        place = context.place_at((self.latitude, self.longitude))
        if place is None:
            raise TransformError(f"no commune at ({self.latitude}, {self.longitude})")
        self.insee_code = place.insee_code
        if not self.city and place.city:
            self.city = place.city
        if not self.postcode and place.postcode:
            self.postcode = place.postcode
        if not self.street and place.street:
            self.street = place.street

    def transform_validate_insee_code(self, context: TransformContext) -> None:
        """INSEE code: 5 characters, departments 01-95 but 20, Corsica 2A/2B, overseas 97x."""
        code = normalise_insee_code(self.insee_code)
        if code != self.insee_code:
            self.insee_code = code

    def transform_normalise_text(self, context: TransformContext) -> None:
        """Clean street and city, a 5-digit postcode, and the one-line label."""
        street = clean_text(self.street)
        city = normalise_name(self.city) if self.city else None
        postcode = clean_text(self.postcode)
        if postcode and postcode.isdigit() and len(postcode) == 4:
            postcode = "0" + postcode
        label = " ".join(p for p in (street, postcode, city) if p) or None
        if street != self.street:
            self.street = street
        if city != self.city:
            self.city = city
        if postcode != self.postcode:
            self.postcode = postcode
        if label != self.label:
            self.label = label


class Activity(BaseModel):
    """Something to do at a POI: a race of an event (sport, distance, date) or a venue's sport."""

    model_config = ConfigDict(extra="forbid")

    sport: str
    name: str | None = None
    distance_km: float | None = None
    starts_on: date | None = None

    def transform_normalise_sport(self, context: TransformContext) -> None:
        """Map the source's sport wording onto the controlled vocabulary (unknown: its slug)."""
        sport = _sport(self.sport)
        if sport != self.sport:
            self.sport = sport

    def transform_normalise_name(self, context: TransformContext) -> None:
        """Clean the activity's name."""
        name = normalise_name(self.name) if self.name else None
        if name != self.name:
            self.name = name

    def transform_check_distance(self, context: TransformContext) -> None:
        """A distance is positive and below 1,000 km; kept to 3 decimals (metres)."""
        distance = self.distance_km
        if distance is None:
            return
        if not 0 < distance < 1000:
            raise TransformError(f"implausible distance {distance} km")
        rounded = round(distance, 3)
        if rounded != distance:
            self.distance_km = rounded


@functools.lru_cache(maxsize=4096)
def _sport(wording: str) -> str:
    slug = ascii_slug(wording)
    if not slug:
        raise TransformError(f"empty sport {wording!r}")
    return SPORTS.get(slug, slug)


class AddressPoi(BaseModel):
    """A POI's address and the role it plays there (venue, start, finish)."""

    model_config = ConfigDict(extra="forbid")

    role: str = "venue"
    address: Address

    def transform_normalise_role(self, context: TransformContext) -> None:
        """Roles are lower-case slugs."""
        role = ascii_slug(self.role) or "venue"
        if role != self.role:
            self.role = role


class Poi(BaseModel):
    """A point of interest: an event (with races) or a facility (with sports)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["event", "facility"]
    name: str
    description: str | None = None
    url: str | None = None
    addresses: list[AddressPoi] = Field(default_factory=list)
    activities: list[Activity] = Field(default_factory=list)

    def transform_normalise_name(self, context: TransformContext) -> None:
        """Clean the name (title case when shouted); a POI without a name is an error."""
        name = normalise_name(self.name)
        if not name:
            raise TransformError("empty name")
        if name != self.name:
            self.name = name

    def transform_normalise_text(self, context: TransformContext) -> None:
        """Clean the description and the URL (scheme and host in lower case)."""
        description = clean_text(self.description)
        if description != self.description:
            self.description = description
        url = clean_text(self.url)
        if url:
            match = _URL.match(url)
            url = (match[1].lower() + match[2].lower() + match[3]) if match else url
        if url != self.url:
            self.url = url

    def transform_require_address(self, context: TransformContext) -> None:
        """A POI is shown on a map: it needs at least one address."""
        if not self.addresses:
            raise TransformError("no address")


class RegisteredPoi(BaseModel):
    """A POI as one source sees it; the load's key is (source, original_id)."""

    model_config = ConfigDict(extra="forbid")

    source: str
    original_id: str
    content_hash: str | None = None
    raw_hash: str | None = None
    """Fingerprint of the raw record and the transform code: an unchanged one skips the
    transform on the next run (set by the pipeline, not part of the content hash)."""
    poi: Poi
    errors: list[str] = Field(default_factory=list, exclude=True)
    """What the generic transform found wrong (not part of the record nor of its hash)."""

    def transform_content_hash(self, context: TransformContext) -> None:
        """sha256 of the normalised record (runs last: children are transformed first)."""
        self.content_hash = content_hash(self)


def content_hash(record: RegisteredPoi) -> str:
    """sha256 of the record's JSON (its source, id and POI; fields in model order), hashes aside.

    Pydantic serialises fields in declaration order, so the text is canonical for a given model
    definition (changing the models changes every hash once: one new version per POI).
    """
    body = record.__pydantic_serializer__.to_json(record, exclude=_NOT_CONTENT)
    return hashlib.sha256(body).hexdigest()


_NOT_CONTENT = {"content_hash", "raw_hash", "errors"}
