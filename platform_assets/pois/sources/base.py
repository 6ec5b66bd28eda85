"""What a POI source module provides: an extract and a specific transform (see `Source`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from platform_assets.pois.models import RegisteredPoi

RawRecord = dict[str, Any]


class SourceError(RuntimeError):
    """A source could not be read (after retries), naming the URL, page or file."""


class SourceRecordError(ValueError):
    """One record of a source cannot be transformed (names the source and the record)."""


@dataclass(frozen=True)
class ExtractOptions:
    """How HTTP sources are read (from PoiSourcesResource)."""

    page_size: int = 100
    max_retries: int = 3
    backoff_seconds: float = 0.5
    timeout_seconds: float = 30.0


@dataclass(frozen=True)
class Source:
    """One source: its extract (records as received) and its specific transform.

    `extract(location, options)` yields JSON-able dicts; `location` None means the bundled
    fixture. `transform(record)` returns the common model or raises (the record is quarantined).
    `original_id(record)` finds the source's id even in a malformed record, when it can.
    Functions are module-level, so a process pool can pickle them.
    """

    name: str
    kind: str  # "http" or "file": the asset's kind
    description: str
    extract: Callable[[str | None, ExtractOptions], Iterator[RawRecord]]
    transform: Callable[[Mapping[str, Any]], RegisteredPoi]
    original_id: Callable[[Mapping[str, Any]], str | None]
