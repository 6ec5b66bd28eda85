"""A local stand-in for an OData product catalogue (Copernicus Data Space style).

Serves `/odata/v1/Products` on 127.0.0.1 from memory, either as fixed pages or as a product list
it filters, orders and pages itself. Tests script failures (503, 429 with Retry-After) and read the
requests it received. It evaluates `$filter` on its own, independently of the client's code, so a
wrongly rendered filter shows up as a 400 or as wrong results.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

PRODUCTS_PATH = "/odata/v1/Products"

Page = Sequence[Mapping[str, Any]] | Mapping[str, Any]
"""A list of items (the server adds the nextLink) or a whole page body served verbatim."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass(frozen=True)
class ScriptedFailure:
    """An error response to give instead of the next normal one."""

    status: int
    retry_after: str | None = None
    body: str = ""


class FilterSyntaxError(ValueError):
    """The `$filter` is outside the grammar the fake (and Copernicus) accepts."""


_STRING = r"'(?P<{name}>(?:[^']|'')*)'"
_DATETIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,12})?Z"
_CLAUSE = re.compile(
    r"\s*(?:"
    + r"Collection/Name\s+eq\s+"
    + _STRING.format(name="collection")
    + r"|contains\(Name,\s*"
    + _STRING.format(name="contains")
    + r"\)"
    + r"|(?P<field>ContentDate/Start|ContentDate/End|PublicationDate)\s+"
    + r"(?P<op>eq|ne|gt|ge|lt|le)\s+(?P<value>"
    + _DATETIME
    + r"))\s*"
)
_OPS = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}
_MISSIONS = {"S1": "SENTINEL-1", "S2": "SENTINEL-2", "S3": "SENTINEL-3", "S5P": "SENTINEL-5P"}


def _parse_datetime(value: str) -> datetime:
    # fromisoformat takes at most 6 fractional digits.
    head, _, frac = value.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac or '0')[:6]:0<6}+00:00")


def _item_field(item: Mapping[str, Any], name: str) -> Any:
    if name == "Collection/Name":
        collection = item.get("Collection")
        if isinstance(collection, Mapping):
            return collection.get("Name")
        if isinstance(collection, str):
            return collection
        item_name = str(item.get("Name", ""))
        for prefix in sorted(_MISSIONS, key=len, reverse=True):
            if item_name.startswith(prefix):
                return _MISSIONS[prefix]
        return None
    if name.startswith("ContentDate/"):
        content = item.get("ContentDate")
        value = content.get(name.split("/")[1]) if isinstance(content, Mapping) else None
    else:
        value = item.get(name)
    return _parse_datetime(value) if isinstance(value, str) else None


def parse_filter(text: str) -> list[tuple[str, str, Any]]:
    """Parse `clause and clause ...` into (field, op, value) triples."""
    clauses: list[tuple[str, str, Any]] = []
    pos = 0
    while True:
        match = _CLAUSE.match(text, pos)
        if not match:
            raise FilterSyntaxError(f"cannot parse $filter at {pos}: {text[pos:]!r}")
        if match.group("collection") is not None:
            clauses.append(("Collection/Name", "eq", match.group("collection").replace("''", "'")))
        elif match.group("contains") is not None:
            clauses.append(("Name", "contains", match.group("contains").replace("''", "'")))
        else:
            value = _parse_datetime(match.group("value"))
            clauses.append((match.group("field"), match.group("op"), value))
        pos = match.end()
        if pos == len(text):
            return clauses
        if not text.startswith("and ", pos):
            raise FilterSyntaxError(f"expected 'and' at {pos}: {text[pos:]!r}")
        pos += 4


def item_matches(item: Mapping[str, Any], clauses: list[tuple[str, str, Any]]) -> bool:
    """Evaluate parsed clauses on a raw item; an item missing a field is served anyway, as a real
    catalogue would serve its broken records."""
    for name, op, expected in clauses:
        if op == "contains":
            name_value = item.get("Name")
            if isinstance(name_value, str) and expected not in name_value:
                return False
            continue
        actual = _item_field(item, name)
        if actual is None:
            continue
        if not _OPS[op](actual, expected):
            return False
    return True


class FakeODataServer(ThreadingHTTPServer):
    """The catalogue stand-in; use `running_odata_server` to start and stop it."""

    daemon_threads = True

    def __init__(
        self,
        *,
        pages: Sequence[Page] | None = None,
        products: Sequence[Mapping[str, Any]] | None = None,
        page_size: int = 100,
        token: str | None = None,
    ) -> None:
        if (pages is None) == (products is None):
            raise ValueError("give either pages or products")
        super().__init__(("127.0.0.1", 0), _ODataHandler)
        self.pages = list(pages) if pages is not None else None
        self.products = list(products) if products is not None else None
        self.page_size = page_size
        self.token = token
        self._lock = threading.Lock()
        self._failures: deque[ScriptedFailure] = deque()
        self._requests: list[RecordedRequest] = []

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`; the products are under `/odata/v1/Products`."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received so far, failed ones included."""
        with self._lock:
            return list(self._requests)

    def fail_next(
        self, count: int = 1, status: int = 503, *, retry_after: str | None = None, body: str = ""
    ) -> None:
        """Answer the next `count` requests with `status` (and a Retry-After header if given)."""
        with self._lock:
            for _ in range(count):
                self._failures.append(ScriptedFailure(status, retry_after, body))

    def _record(self, request: RecordedRequest) -> ScriptedFailure | None:
        with self._lock:
            self._requests.append(request)
            return self._failures.popleft() if self._failures else None

    def page_body(self, params: Mapping[str, str]) -> dict[str, Any]:
        """The JSON body for a products request (raises FilterSyntaxError on a bad $filter)."""
        if self.pages is not None:
            index = int(params.get("$skiptoken", "0"))
            if index >= len(self.pages):
                return {"@odata.context": "$metadata#Products", "value": []}
            page = self.pages[index]
            if isinstance(page, Mapping):
                return dict(page)
            body: dict[str, Any] = {"@odata.context": "$metadata#Products", "value": list(page)}
            if index + 1 < len(self.pages):
                body["@odata.nextLink"] = f"{self.base_url}{PRODUCTS_PATH}?$skiptoken={index + 1}"
            return body

        assert self.products is not None
        clauses = parse_filter(params["$filter"]) if params.get("$filter") else []
        items = [item for item in self.products if item_matches(item, clauses)]
        order = params.get("$orderby", "")
        if order:
            if not re.fullmatch(r"PublicationDate( asc| desc)?", order):
                raise FilterSyntaxError(f"unsupported $orderby {order!r}")
            items.sort(
                key=lambda item: str(item.get("PublicationDate", "")),
                reverse=order.endswith("desc"),
            )
        top = min(int(params.get("$top", self.page_size)), self.page_size)
        skip = int(params.get("$skip", "0"))
        body = {"@odata.context": "$metadata#Products", "value": items[skip : skip + top]}
        if skip + top < len(items):
            next_params = {k: v for k, v in params.items() if k != "$skip"}
            next_params["$skip"] = str(skip + top)
            query = urlencode(next_params, quote_via=quote, safe="$'(),/:")
            body["@odata.nextLink"] = f"{self.base_url}{PRODUCTS_PATH}?{query}"
        return body


class _ODataHandler(BaseHTTPRequestHandler):
    server: FakeODataServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _send(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        headers = {key.lower(): value for key, value in self.headers.items()}
        failure = self.server._record(RecordedRequest("GET", url.path, params, headers))
        if failure is not None:
            extra = {"Retry-After": failure.retry_after} if failure.retry_after else {}
            self._send(failure.status, (failure.body or "scripted failure").encode(), extra)
            return
        if self.server.token and headers.get("authorization") != f"Bearer {self.server.token}":
            self._send(401, {"detail": "Not authenticated"})
            return
        if url.path != PRODUCTS_PATH:
            self._send(404, {"detail": "Not Found"})
            return
        try:
            body = self.server.page_body(params)
        except (FilterSyntaxError, ValueError) as exc:
            self._send(400, {"detail": {"message": str(exc)}})
            return
        self._send(200, body)


@contextmanager
def running_odata_server(
    pages: Sequence[Page] | None = None,
    *,
    products: Sequence[Mapping[str, Any]] | None = None,
    page_size: int = 100,
    token: str | None = None,
) -> Iterator[FakeODataServer]:
    """Run a fake catalogue in a background thread for the duration of the block."""
    server = FakeODataServer(pages=pages, products=products, page_size=page_size, token=token)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="fake-odata", daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class ProductFactory:
    """Builds Copernicus-shaped Sentinel-2 items for tests, with increasing publication dates."""

    counter: int = 0
    tiles: list[str] = field(default_factory=lambda: ["31TCJ", "31TDJ"])

    def item(self, **overrides: Any) -> dict[str, Any]:
        """One item; `overrides` replace top-level keys (None removes a key)."""
        self.counter += 1
        n = self.counter
        day = 1 + (n - 1) // 24
        hour = (n - 1) % 24
        tile = self.tiles[n % len(self.tiles)]
        sensing = f"202603{day:02d}T1050{n % 60:02d}"
        item: dict[str, Any] = {
            "@odata.mediaContentType": "application/octet-stream",
            "Id": f"00000000-0000-4000-8000-{n:012d}",
            "Name": f"S2B_MSIL2A_{sensing}_N0510_R051_T{tile}_202603{day:02d}T131512.SAFE",
            "ContentLength": 1_000_000 + n,
            "PublicationDate": f"2026-03-{day:02d}T{hour:02d}:00:00.000Z",
            "Online": True,
            "ContentDate": {
                "Start": f"2026-03-{day:02d}T10:50:{n % 60:02d}.024Z",
                "End": f"2026-03-{day:02d}T10:50:{n % 60:02d}.024Z",
            },
            "Footprint": "geography'SRID=4326;POLYGON ((0.5 43.2, 1.9 43.2, 1.9 44.2, 0.5 43.2))'",
        }
        for key, value in overrides.items():
            if value is None:
                item.pop(key, None)
            else:
                item[key] = value
        return item

    def items(self, count: int) -> list[dict[str, Any]]:
        """`count` items."""
        return [self.item() for _ in range(count)]
