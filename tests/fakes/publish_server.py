"""A local stand-in for a Socrata-style upsert endpoint: POST a JSON array of rows.

Rows are upserted by `record_id` (a row without one is an error of its batch, HTTP 400); the
answer has Socrata's counters ("Rows Created", "Rows Updated", "Errors"). `fail_next(n, status)`
makes the next n POSTs answer `status` (a 5xx) before the rows are looked at. `store` is
{record_id: row}; `requests` counts every POST, `batches` the sizes of accepted batches.

`count_only=True` parses and counts but keeps no rows (for benchmarks of a million rows); a GET
answers the counters (for a server run in another process: `python -m tests.fakes.publish_server`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class PublishState:
    """What the server holds, shared with its handler threads."""

    token: str | None = None
    count_only: bool = False
    store: dict[str, dict[str, Any]] = field(default_factory=dict)
    received_rows: int = 0
    requests: int = 0
    batches: list[int] = field(default_factory=list)
    failures_left: int = 0
    failure_status: int = 503
    lock: threading.Lock = field(default_factory=threading.Lock)


class PublishServer:
    """Handle on a running server: its URL and state."""

    def __init__(self, httpd: ThreadingHTTPServer, state: PublishState) -> None:
        self.httpd = httpd
        self.state = state

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}/resource/records.json"

    def fail_next(self, times: int, status: int = 503) -> None:
        """Answer the next `times` POSTs with `status`."""
        with self.state.lock:
            self.state.failures_left = times
            self.state.failure_status = status


def _handler(state: PublishState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _answer(self, status: int, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            """Counters, for a server running in another process (benchmarks)."""
            with state.lock:
                payload = {
                    "requests": state.requests,
                    "received_rows": state.received_rows,
                    "stored": len(state.store),
                    "batches": len(state.batches),
                }
            self._answer(200, payload)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            with state.lock:
                state.requests += 1
                if state.failures_left > 0:
                    state.failures_left -= 1
                    self._answer(state.failure_status, {"message": "try again later"})
                    return
            if state.token and self.headers.get("Authorization") != f"Bearer {state.token}":
                self._answer(403, {"message": "bad token"})
                return
            try:
                rows = json.loads(raw)
                if not isinstance(rows, list):
                    raise ValueError("the body must be a JSON array")
                ids = [row["record_id"] for row in rows]
            except (ValueError, KeyError, TypeError) as exc:
                self._answer(400, {"message": f"bad batch: {exc}"})
                return
            with state.lock:
                state.received_rows += len(rows)
                state.batches.append(len(rows))
                if state.count_only:
                    created, updated = len(rows), 0
                else:
                    updated = sum(1 for i in ids if i in state.store)
                    state.store.update(zip(ids, rows, strict=True))
                    created = len(rows) - updated
            self._answer(
                200,
                {"Errors": 0, "Rows Created": created, "Rows Updated": updated, "Rows Deleted": 0},
            )

    return Handler


@contextmanager
def publish_server(
    token: str | None = None, *, count_only: bool = False
) -> Iterator[PublishServer]:
    """Run the server on a free local port for the duration of the block."""
    state = PublishState(token=token, count_only=count_only)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="publish-server", daemon=True)
    thread.start()
    try:
        yield PublishServer(httpd, state)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def main() -> None:
    """`python -m tests.fakes.publish_server PORT`: serve (count only) until killed; prints the URL."""
    import sys

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    state = PublishState(count_only=True)
    httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(state))
    print(f"http://127.0.0.1:{httpd.server_address[1]}/resource/records.json", flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
