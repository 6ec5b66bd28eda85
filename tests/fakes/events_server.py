"""A local stand-in for the events site's API, and for the BAN reverse-geocoding API.

`running_events_server(events, page_size)` serves `GET /events?page=N&page_size=M` on 127.0.0.1
(the page size asked for wins, capped by the server's), with an absolute `next` link; tests
script one-off failures per page (`fail_once(page, status)`) and read the requests received.
`running_geocoder_server(communes)` answers `POST /reverse/csv/` like the BAN: the uploaded CSV
comes back with `result_*` columns, from a function of the point.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class FakeEventsServer(ThreadingHTTPServer):
    """Serves a list of event records by pages."""

    daemon_threads = True

    def __init__(self, events: Sequence[dict[str, Any]], page_size: int = 100) -> None:
        super().__init__(("127.0.0.1", 0), _EventsHandler)
        self.events = list(events)
        self.page_size = page_size
        self._lock = threading.Lock()
        self._failures: dict[int, list[int]] = {}
        self.requests: list[tuple[int, int]] = []  # (page, status)

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def fail_once(self, page: int, status: int = 500) -> None:
        """The next request of `page` answers `status` (then the page is served normally)."""
        with self._lock:
            self._failures.setdefault(page, []).append(status)

    def _scripted(self, page: int) -> int | None:
        with self._lock:
            queue = self._failures.get(page)
            return queue.pop(0) if queue else None

    def _record(self, page: int, status: int) -> None:
        with self._lock:
            self.requests.append((page, status))


class _EventsHandler(BaseHTTPRequestHandler):
    server: FakeEventsServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path != "/events":
            self._send(404, b'{"detail": "not found"}')
            return
        page = int(params.get("page", "1"))
        size = min(int(params.get("page_size", self.server.page_size)), self.server.page_size)
        failure = self.server._scripted(page)
        if failure is not None:
            self.server._record(page, failure)
            self._send(failure, b"scripted failure", "text/plain")
            return
        start = (page - 1) * size
        items = self.server.events[start : start + size]
        more = start + size < len(self.server.events)
        body = {
            "page": page,
            "events": items,
            "next": f"{self.server.base_url}/events?page={page + 1}&page_size={size}"
            if more
            else None,
        }
        self.server._record(page, 200)
        self._send(200, json.dumps(body).encode())


@contextmanager
def _serving(server: ThreadingHTTPServer, name: str) -> Iterator[Any]:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name=name, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def running_events_server(
    events: Sequence[dict[str, Any]], page_size: int = 100
) -> Iterator[FakeEventsServer]:
    """A fake events API in a background thread for the duration of the block."""
    with _serving(FakeEventsServer(events, page_size), "fake-events") as server:
        yield server


# --- the BAN reverse-geocoding API ------------------------------------------------------------

PlaceFn = Callable[[float, float], dict[str, str] | None]


class FakeGeocoderServer(ThreadingHTTPServer):
    """Answers `POST /reverse/csv/` with `place(lat, lon)` as result_* columns."""

    daemon_threads = True

    def __init__(self, place: PlaceFn) -> None:
        super().__init__(("127.0.0.1", 0), _GeocoderHandler)
        self.place = place
        self.batches: list[int] = []  # points per request
        self.fail_next: list[int] = []

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://127.0.0.1:{self.server_address[1]}"


class _GeocoderHandler(BaseHTTPRequestHandler):
    server: FakeGeocoderServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        if self.server.fail_next:
            status = self.server.fail_next.pop(0)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if urlsplit(self.path).path != "/reverse/csv/":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        header = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(header + raw)
        data = next(
            part.get_payload(decode=True)
            for part in message.iter_parts()
            if part.get_param("name", header="content-disposition") == "data"
        )
        rows = list(csv.DictReader(io.StringIO(data.decode())))
        self.server.batches.append(len(rows))
        out = io.StringIO()
        columns = ["id", "lat", "lon", "result_label", "result_citycode", "result_city",
                   "result_postcode", "result_street"]  # fmt: skip
        writer = csv.DictWriter(out, columns)
        writer.writeheader()
        for row in rows:
            found = self.server.place(float(row["lat"]), float(row["lon"])) or {}
            writer.writerow({**row, **{f"result_{k}": v for k, v in found.items()}})
        body = out.getvalue().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def running_geocoder_server(place: PlaceFn) -> Iterator[FakeGeocoderServer]:
    """A fake BAN reverse API in a background thread for the duration of the block."""
    with _serving(FakeGeocoderServer(place), "fake-geocoder") as server:
        yield server
