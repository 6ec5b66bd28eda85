"""Where published data goes: an HTTP endpoint taking JSON batches (Socrata-style upsert) and a
folder of CSV files; and the dry-run switch that stops every write.

`PUBLISH_URL` is the endpoint (POST of a JSON array of rows; each row carries its `record_id`, so
the endpoint upserts and a republication never duplicates); `PUBLISH_TOKEN` its bearer token;
`PUBLISH_DIR` the CSV folder (default <state>/publish). `FISHNET_DRY_RUN` makes dry run the
default of every run (a run tag `fishnet/dry_run` overrides it, see platform_assets/ops/dry_run.py).
Nothing is read at import time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from dagster import ConfigurableResource
from pydantic import Field

from resources.settings import setting, setting_path
from resources.warehouse import state_dir

if TYPE_CHECKING:
    # httpx is imported by the sender when it is built, not by the definitions (issue #20)
    import httpx

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


class PublishError(RuntimeError):
    """A batch the endpoint refused, or that still failed after every retry."""


def parse_flag(name: str, raw: str | None) -> bool:
    """A boolean setting or tag ('true'/'false', '1'/'0', 'yes'/'no', 'on'/'off')."""
    value = (raw or "").strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ValueError(f"{name}={raw!r} is not a boolean (true/false)")


@dataclass(frozen=True)
class BatchResult:
    """What the endpoint said of one batch."""

    status_code: int
    created: int
    updated: int
    errors: int
    attempts: int
    seconds: float


class HttpBatchSender:
    """POSTs JSON batches to one endpoint, retrying 5xx answers and broken connections."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout_seconds: float = 60.0,
        max_retries: int = 5,
        backoff_seconds: float = 0.5,
    ) -> None:
        import httpx

        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.url = url
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self._client = httpx.Client(headers=headers, timeout=timeout_seconds)

    def send(self, body: bytes, label: str) -> BatchResult:
        """Send one JSON array; `label` names the batch in errors (e.g. 'chunk 3 of vessels')."""
        import httpx

        started = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._client.post(self.url, content=body)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    return _result(response, attempt, time.perf_counter() - started)
                if response.status_code < 500 and response.status_code != 429:
                    raise PublishError(
                        f"{label}: {self.url} refused the batch with HTTP {response.status_code}: "
                        f"{response.text[:300]}"
                    )
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
            if attempt > self.max_retries:
                raise PublishError(f"{label}: {self.url} failed {attempt} times, last {problem}")
            time.sleep(min(self.backoff_seconds * 2 ** (attempt - 1), 30.0))

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> HttpBatchSender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _count(payload: Any, *names: str) -> int:
    if not isinstance(payload, dict):
        return 0
    for name in names:
        value = payload.get(name)
        if isinstance(value, int):
            return value
    return 0


def _result(response: httpx.Response, attempts: int, seconds: float) -> BatchResult:
    try:
        payload = response.json()
    except ValueError:
        payload = None
    return BatchResult(
        status_code=response.status_code,
        created=_count(payload, "Rows Created", "created"),
        updated=_count(payload, "Rows Updated", "updated"),
        errors=_count(payload, "Errors", "errors"),
        attempts=attempts,
        seconds=seconds,
    )


class PublisherResource(ConfigurableResource):
    """The publication endpoint and CSV folder; empty fields fall back to PUBLISH_* settings."""

    url: str | None = Field(default=None, description="JSON batch endpoint; empty: PUBLISH_URL")
    token: str | None = Field(default=None, description="bearer token; empty: PUBLISH_TOKEN")
    directory: str | None = Field(
        default=None, description="CSV folder; empty: PUBLISH_DIR, else <state>/publish"
    )
    timeout_seconds: float = Field(default=60.0, description="per HTTP request")
    max_retries: int = Field(default=5, description="retries of a batch answered with a 5xx")
    backoff_seconds: float = Field(default=0.5, description="first retry delay, doubled each time")

    def endpoint(self, override: str | None = None) -> str | None:
        """The endpoint URL (a run's destination wins), or None when none is configured."""
        return override or setting("PUBLISH_URL", self.url)

    def sender(self, override_url: str | None = None) -> HttpBatchSender:
        """A client for the endpoint; raises when no endpoint is configured."""
        url = self.endpoint(override_url)
        if not url:
            raise PublishError("no publication endpoint: set PUBLISH_URL or the run's destination")
        return HttpBatchSender(
            url,
            setting("PUBLISH_TOKEN", self.token),
            timeout_seconds=self.timeout_seconds,
            max_retries=self.max_retries,
            backoff_seconds=self.backoff_seconds,
        )

    def csv_dir(self, override: str | None = None) -> Path:
        """The CSV folder (a run's destination wins)."""
        if override:
            return Path(override)
        return setting_path("PUBLISH_DIR", self.directory, state_dir() / "publish")


class DryRunResource(ConfigurableResource):
    """Dry run for every run of a deployment: `enabled`, else FISHNET_DRY_RUN (default off).

    A run tag `fishnet/dry_run` ("true"/"false") wins over both (platform_assets/ops/dry_run.py).
    """

    enabled: bool | None = Field(
        default=None, description="read and transform, write nothing; empty: FISHNET_DRY_RUN"
    )

    def is_enabled(self) -> bool:
        """Whether runs default to dry run here."""
        if self.enabled is not None:
            return self.enabled
        return parse_flag("FISHNET_DRY_RUN", setting("FISHNET_DRY_RUN"))
