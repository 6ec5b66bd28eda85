"""Clients for an OData product catalogue (Copernicus Data Space style) and its file-based stand-in.

Pure client code: no Dagster, no database. The harvester asks a `Catalogue` for the products of a
query window and stores them; a malformed catalogue item comes back as a `RejectedItem` so one bad
record never fails a whole harvest.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable
from urllib.parse import quote, urlencode

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

if TYPE_CHECKING:
    # httpx is imported by the client when it is built, not when the definitions are (issue #20)
    import httpx

logger = logging.getLogger(__name__)

FIXTURE_CATALOGUE_DIR = Path(__file__).parent / "data" / "catalogue"
"""The small Sentinel-2 catalogue the embedded default serves."""

PRODUCTS_PATH = "/odata/v1/Products"
ORDER_BY = "PublicationDate asc"

# MGRS tile in a Sentinel-2 product name: ..._R051_T31TCJ_...
_TILE_RE = re.compile(r"_T(\d{2}[A-Z]{3})_")
# Copernicus items carry no collection name; the mission prefix of the name gives it.
_COLLECTION_PREFIXES: tuple[tuple[str, str], ...] = (
    ("S5P", "SENTINEL-5P"),
    ("S1", "SENTINEL-1"),
    ("S2", "SENTINEL-2"),
    ("S3", "SENTINEL-3"),
)


class CatalogueError(Exception):
    """The catalogue could not be read (after retries, or with a non-retryable answer)."""

    def __init__(
        self, message: str, *, url: str | None = None, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status_code = status_code


def _as_utc(value: datetime | None) -> datetime | None:
    """Catalogue times are UTC; a naive datetime is taken to be UTC rather than local time."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class CatalogueQuery(BaseModel):
    """What to ask the catalogue for; `top` is the page size, not a limit on the total."""

    model_config = ConfigDict(frozen=True)

    collection: str = Field(min_length=1)
    name_contains: list[str] = Field(default_factory=list)
    content_start: datetime | None = None
    content_end: datetime | None = None
    published_after: datetime | None = None
    top: int = Field(default=100, ge=1, le=1000)  # Copernicus refuses $top above 1000

    @field_validator("content_start", "content_end", "published_after")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return _as_utc(value)


def odata_datetime(value: datetime) -> str:
    """Render an OData DateTimeOffset literal, milliseconds like Copernicus, microseconds if any."""
    utc = _as_utc(value)
    assert utc is not None
    if utc.microsecond % 1000:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _odata_string(value: str) -> str:
    """Quote a string literal; OData escapes a quote by doubling it."""
    return "'" + value.replace("'", "''") + "'"


def build_filter(q: CatalogueQuery) -> str:
    """Render the `$filter` for a query.

    The sensing window is half-open on the sensing start (`ge start`, `lt end`) so consecutive
    windows partition the products: none is harvested twice or falls between two windows.
    """
    clauses = [f"Collection/Name eq {_odata_string(q.collection)}"]
    clauses += [f"contains(Name,{_odata_string(part)})" for part in q.name_contains]
    if q.content_start is not None:
        clauses.append(f"ContentDate/Start ge {odata_datetime(q.content_start)}")
    if q.content_end is not None:
        clauses.append(f"ContentDate/Start lt {odata_datetime(q.content_end)}")
    if q.published_after is not None:
        clauses.append(f"PublicationDate gt {odata_datetime(q.published_after)}")
    return " and ".join(clauses)


def build_query_string(q: CatalogueQuery) -> str:
    """The first page's query string; spaces as %20 because some OData servers read '+' literally."""
    params = {"$filter": build_filter(q), "$orderby": ORDER_BY, "$top": str(q.top)}
    return urlencode(params, quote_via=quote, safe="$'(),/:")


def tile_from_name(name: str) -> str | None:
    """The MGRS tile (`31TCJ`) of a Sentinel-2 product name, None for products without one."""
    match = _TILE_RE.search(name)
    return match.group(1) if match else None


def collection_from_name(name: str) -> str | None:
    """The collection implied by the mission prefix of a product name (`S2B_...` -> SENTINEL-2)."""
    for prefix, collection in _COLLECTION_PREFIXES:
        if name.startswith(prefix):
            return collection
    return None


class CatalogueProduct(BaseModel):
    """One catalogue product, as the harvester stores it."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    collection: str
    publication_date: AwareDatetime
    content_start: AwareDatetime
    content_end: AwareDatetime
    footprint: str | None = None
    tile: str | None = None
    online: bool = True
    size: int | None = Field(default=None, ge=0)

    @classmethod
    def from_odata(
        cls, item: Mapping[str, Any], default_collection: str | None = None
    ) -> CatalogueProduct:
        """Parse an OData item; raises ValueError (pydantic's ValidationError is one) if malformed.

        `default_collection` stands in when neither the item nor its name says which collection
        it belongs to (the server filtered on it, so it is known).
        """
        if not isinstance(item, Mapping):
            raise ValueError(f"item is a {type(item).__name__}, not an object")
        missing = [
            key for key in ("Id", "Name", "PublicationDate", "ContentDate") if key not in item
        ]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        if item["Id"] is None or not str(item["Id"]).strip():
            # str(None) would make every later null id "already known"
            raise ValueError("Id is null or empty")
        content = item["ContentDate"]
        if not isinstance(content, Mapping) or "Start" not in content or "End" not in content:
            raise ValueError("ContentDate has no Start/End")
        name = item["Name"]
        if not isinstance(name, str):
            raise ValueError("Name is not a string")
        collection = _item_collection(item) or collection_from_name(name) or default_collection
        if collection is None:
            raise ValueError(f"cannot tell the collection of {name!r}")
        online = item.get("Online", True)
        return cls(
            id=str(item["Id"]),
            name=name,
            collection=collection,
            publication_date=item["PublicationDate"],
            content_start=content["Start"],
            content_end=content["End"],
            footprint=item.get("Footprint"),
            tile=tile_from_name(name),
            online=True if online is None else online,
            size=item.get("ContentLength"),
        )


def _item_collection(item: Mapping[str, Any]) -> str | None:
    """A collection given by the item itself, as `Collection: "X"` or `Collection: {Name: "X"}`."""
    value = item.get("Collection")
    if isinstance(value, Mapping):
        value = value.get("Name")
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class RejectedItem:
    """A catalogue item that could not be parsed, kept with the reason so it can be reported."""

    raw: Any
    reason: str

    @property
    def item_id(self) -> str | None:
        """The item's `Id` if it has one, to name it in reports."""
        if isinstance(self.raw, Mapping) and self.raw.get("Id") is not None:
            return str(self.raw["Id"])
        return None


def matches(q: CatalogueQuery, product: CatalogueProduct) -> bool:
    """Whether a product satisfies a query, with the same semantics as `build_filter`."""
    if product.collection != q.collection:
        return False
    if any(part not in product.name for part in q.name_contains):
        return False
    if q.content_start is not None and product.content_start < q.content_start:
        return False
    if q.content_end is not None and product.content_start >= q.content_end:
        return False
    return q.published_after is None or product.publication_date > q.published_after


def _reason(exc: ValueError) -> str:
    """A one-line reason; pydantic's own message spans lines and links to its docs."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'item'}: {error['msg']}"
            for error in exc.errors()
        )
    return str(exc).strip()


def _reject(raw: Any, exc: ValueError) -> RejectedItem:
    """Log and wrap a malformed item; the reason keeps the item's identity for the report."""
    item = RejectedItem(raw=raw, reason=_reason(exc))
    logger.warning("Rejected catalogue item %s: %s", item.item_id or "<no Id>", item.reason)
    return item


@runtime_checkable
class Catalogue(Protocol):
    """Anything the harvester can list products from."""

    def iter_products(self, q: CatalogueQuery) -> Iterator[CatalogueProduct | RejectedItem]:
        """Yield every product matching `q` in publication order, and any rejected item."""
        ...


class ODataCatalogueClient:
    """Reads an OData catalogue over HTTP, following `@odata.nextLink` and retrying transient errors."""

    RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        max_attempts: int = 5,
        base_delay: float = 1.0,
        max_delay: float = 120.0,
        products_path: str = PRODUCTS_PATH,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import httpx  # here, not at import: the definitions import this module (issue #20)

        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )
        self._products_path = products_path
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._random = random.Random()

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def iter_products(self, q: CatalogueQuery) -> Iterator[CatalogueProduct | RejectedItem]:
        """Yield the products matching `q`, page after page, in publication order."""
        import httpx

        url = httpx.URL(f"{self._products_path}?{build_query_string(q)}")
        seen: set[str] = set()
        pages = products = rejected = 0
        started = time.monotonic()
        while True:
            payload, page_url = self._get_page(url)
            seen.add(str(page_url))
            pages += 1
            items = payload.get("value")
            if not isinstance(items, list):
                raise CatalogueError(f"page {page_url} has no 'value' list", url=str(page_url))
            for raw in items:
                try:
                    product = CatalogueProduct.from_odata(raw, default_collection=q.collection)
                except ValueError as exc:
                    rejected += 1
                    yield _reject(raw, exc)
                else:
                    products += 1
                    yield product
            next_link = payload.get("@odata.nextLink")
            if not next_link:
                break
            url = self._resolve_next_link(page_url, str(next_link))
            if str(url) in seen:
                raise CatalogueError(f"nextLink loops back to {url}", url=str(url))
        logger.info(
            "Catalogue %s: %d products, %d rejected, %d pages in %.1fs",
            q.collection,
            products,
            rejected,
            pages,
            time.monotonic() - started,
        )

    def _resolve_next_link(self, page_url: httpx.URL, next_link: str) -> httpx.URL:
        """Resolve a nextLink; refuse another origin, which would receive our bearer token."""
        url = page_url.join(next_link)
        base = self._http.base_url
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
            raise CatalogueError(
                f"refusing to follow nextLink to another origin: {url} (catalogue is {base})",
                url=str(url),
            )
        return url

    def _get_page(self, url: httpx.URL) -> tuple[dict[str, Any], httpx.URL]:
        """GET one page, retrying 429, 5xx and transport errors with backoff; returns JSON and URL."""
        import httpx

        full_url = self._http.build_request("GET", url).url
        for attempt in range(1, self.max_attempts + 1):
            retry_after: float | None = None
            try:
                response = self._http.get(full_url)
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return self._decode(response), response.url
                body = response.text[:300]
                if response.status_code not in self.RETRYABLE_STATUS:
                    raise CatalogueError(
                        f"catalogue answered {response.status_code} for {response.url}: {body}",
                        url=str(response.url),
                        status_code=response.status_code,
                    )
                failure = f"HTTP {response.status_code}: {body}"
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if attempt == self.max_attempts:
                raise CatalogueError(
                    f"catalogue request {full_url} failed after {attempt} attempts; "
                    f"last error: {failure}",
                    url=str(full_url),
                )
            delay = self._backoff(attempt, retry_after)
            logger.warning(
                "Catalogue request failed (attempt %d/%d, %s); retrying in %.2fs",
                attempt,
                self.max_attempts,
                failure,
                delay,
            )
            self._sleep(delay)
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter, at least the server's Retry-After, capped at max_delay."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        # "Equal jitter": spread concurrent harvesters apart without ever retrying immediately.
        delay = ceiling / 2 + self._random.uniform(0, ceiling / 2)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.max_delay)

    @staticmethod
    def _decode(response: httpx.Response) -> dict[str, Any]:
        """Decode a page body; a non-JSON 200 is a broken server, not a transient error."""
        try:
            payload = response.json()
        except ValueError as exc:
            raise CatalogueError(
                f"catalogue page {response.url} is not JSON: {exc}", url=str(response.url)
            ) from exc
        if not isinstance(payload, dict):
            raise CatalogueError(f"catalogue page {response.url} is not an object")
        return payload


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent/bad."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class FileCatalogueClient:
    """The embedded default: OData pages stored as JSON files, filtered in Python like the server.

    Each file holds `value` and optionally `@odata.nextLink`, the name of the next file.
    """

    def __init__(
        self, directory: str | Path = FIXTURE_CATALOGUE_DIR, first_page: str = "products-1.json"
    ) -> None:
        self.directory = Path(directory)
        self.first_page = first_page

    def iter_products(self, q: CatalogueQuery) -> Iterator[CatalogueProduct | RejectedItem]:
        """Yield matching products in publication order (rejected items first, as read)."""
        matching: list[CatalogueProduct] = []
        for raw in self._iter_raw_items():
            try:
                product = CatalogueProduct.from_odata(raw)
            except ValueError as exc:
                yield _reject(raw, exc)
                continue
            if matches(q, product):
                matching.append(product)
        matching.sort(key=lambda product: (product.publication_date, product.id))
        yield from matching

    def _iter_raw_items(self) -> Iterator[Any]:
        """Walk the page files from the first one along their nextLinks."""
        root = self.directory.resolve()
        name: str | None = self.first_page
        seen: set[Path] = set()
        while name:
            path = (root / name).resolve()
            if path.parent != root:
                raise CatalogueError(f"nextLink {name!r} leaves the catalogue directory {root}")
            if path in seen:
                raise CatalogueError(f"nextLink loops back to {path}")
            seen.add(path)
            try:
                page = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise CatalogueError(f"cannot read catalogue page {path}: {exc}") from exc
            items = page.get("value") if isinstance(page, dict) else None
            if not isinstance(items, list):
                raise CatalogueError(f"catalogue page {path} has no 'value' list")
            yield from items
            name = page.get("@odata.nextLink")
