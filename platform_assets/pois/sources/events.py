"""Events site: an HTTP API of sports events, each with one or more races at a venue.

The API pages its answer: `GET {base}/events?page=1&page_size=N` returns
`{"events": [...], "page": 1, "next": <url of the next page or null>}`. Pages that fail with
429/5xx or a transport error are retried with exponential back-off. Without a URL the extract reads
the same pages from a folder of fixture files (`page-1.json`, whose `next` names the next file).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from platform_assets.pois.models import RegisteredPoi
from platform_assets.pois.sources.base import (
    ExtractOptions,
    RawRecord,
    Source,
    SourceError,
    SourceRecordError,
)

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

NAME = "events"
EVENTS_PATH = "/events"
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
FIRST_FIXTURE_PAGE = "page-1.json"


# --- the source's own records -------------------------------------------------------------------


class Race(BaseModel):
    """One race of an event, as the events site describes it."""

    model_config = ConfigDict(populate_by_name=True)

    # numeric ids are taken as text (in the validator's core, not a Python validator); the
    # other text fields stay strict
    id: str = Field(coerce_numbers_to_str=True)
    discipline: str = Field(min_length=1)
    distance: float | None = Field(default=None, gt=0, description="kilometres")
    date: date
    label: str | None = None


class Venue(BaseModel):
    """Where an event takes place."""

    name: str | None = None
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)
    address: str | None = None
    zip: str | None = None
    town: str | None = None


class Event(BaseModel):
    """An event of the events site: a title, a venue and its races."""

    id: str = Field(coerce_numbers_to_str=True)
    title: str = Field(min_length=1)
    description: str | None = None
    website: str | None = None
    location: Venue
    races: list[Race] = Field(min_length=1)


# --- specific transform --------------------------------------------------------------------------


def original_id(record: Mapping[str, Any]) -> str | None:
    """The event id, even in a record that does not validate."""
    value = record.get("id")
    return str(value) if value not in (None, "") else None


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
    )


def _race_order(race: Race) -> tuple[date, float, str]:
    return (race.date, race.distance or 0, race.id)


def transform(record: Mapping[str, Any]) -> RegisteredPoi:
    """An events-site record -> the common model (a `SourceRecordError` names the record).

    The common model is validated from one nested dict (one call into pydantic's core rather
    than one constructor per model: the same validation, a third of the time).
    """
    try:
        event = Event.model_validate(record)
    except ValidationError as exc:
        raise SourceRecordError(
            f"events record {original_id(record)!r}: {_validation_message(exc)}"
        ) from None
    venue = event.location
    address = {
        "latitude": venue.lat,
        "longitude": venue.lng,
        "street": venue.address,
        "postcode": venue.zip,
        "city": venue.town,
    }
    return RegisteredPoi.model_validate(
        {
            "source": NAME,
            "original_id": event.id,
            "poi": {
                "kind": "event",
                "name": event.title,
                "description": event.description,
                "url": event.website,
                "addresses": [{"role": "venue", "address": address}],
                "activities": [
                    {
                        "sport": race.discipline,
                        "name": race.label,
                        "distance_km": race.distance,
                        "starts_on": race.date,
                    }
                    for race in sorted(event.races, key=_race_order)
                ],
            },
        }
    )


# --- extract -------------------------------------------------------------------------------------


def _get_with_retries(
    client: httpx.Client, url: str, params: dict[str, Any] | None, options: ExtractOptions
) -> dict[str, Any]:
    import httpx

    attempt = 0
    while True:
        attempt += 1
        try:
            response = client.get(url, params=params)
        except httpx.TransportError as exc:
            if attempt > options.max_retries:
                raise SourceError(f"events page {url}: {exc} (after {attempt} attempts)") from exc
            problem = str(exc)
        else:
            if response.status_code == 200:
                try:
                    body = response.json()
                except ValueError as exc:
                    raise SourceError(f"events page {response.url}: not JSON ({exc})") from exc
                if not isinstance(body, dict) or not isinstance(body.get("events"), list):
                    raise SourceError(f"events page {response.url}: no 'events' list")
                return body
            if response.status_code not in RETRYABLE_STATUS or attempt > options.max_retries:
                raise SourceError(
                    f"events page {response.url}: HTTP {response.status_code} "
                    f"(attempt {attempt}): {response.text[:200]}"
                )
            problem = f"HTTP {response.status_code}"
        delay = options.backoff_seconds * 2 ** (attempt - 1)
        log.warning("events page %s: %s; retry %d in %.1f s", url, problem, attempt, delay)
        time.sleep(delay)


def extract_http(base_url: str, options: ExtractOptions) -> Iterator[RawRecord]:
    """Every event of the API, page after page (following `next`)."""
    import httpx  # here, not at the top: the registry imports this module with the definitions

    with httpx.Client(timeout=options.timeout_seconds) as client:
        url = base_url.rstrip("/") + EVENTS_PATH
        params: dict[str, Any] | None = {"page": 1, "page_size": options.page_size}
        seen_pages: set[str] = set()
        while url:
            body = _get_with_retries(client, url, params, options)
            yield from body["events"]
            next_url = body.get("next")
            if not next_url:
                return
            url = str(httpx.URL(base_url).join(next_url))
            if url in seen_pages:
                raise SourceError(f"events page {url}: the API points back to a page already read")
            seen_pages.add(url)
            params = None  # `next` carries its own query


def extract_files(folder: Path) -> Iterator[RawRecord]:
    """The same pages from fixture files: page-1.json, then each page's `next` file."""
    name: str | None = FIRST_FIXTURE_PAGE
    seen: set[str] = set()
    while name:
        if name in seen:
            raise SourceError(f"{folder / name}: pages loop back")
        seen.add(name)
        path = folder / name
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SourceError(f"events fixture page {path}: {exc}") from exc
        yield from body["events"]
        name = body.get("next")


def extract(location: str | None, options: ExtractOptions) -> Iterator[RawRecord]:
    """HTTP when the location is a URL; a folder of pages otherwise."""
    if location and location.startswith(("http://", "https://")):
        yield from extract_http(location, options)
        return
    if location is None:
        raise SourceError(f"{NAME}: no location (PoiSourcesResource gives the bundled fixture)")
    yield from extract_files(Path(location.removeprefix("file://")))


SOURCE = Source(
    name=NAME,
    kind="http",
    description="Sports events (races at a venue) from the events site's paged HTTP API.",
    extract=extract,
    transform=transform,
    original_id=original_id,
)
