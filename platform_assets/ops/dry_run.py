"""Dry run: a job reads and transforms as usual, writes nothing, and says what it would have written.

Switched on per run by the tag `fishnet/dry_run=true` (launchpad "Edit tags", or
`dagster job execute --tags '{"fishnet/dry_run": "true"}'`), or for a deployment by the `dry_run`
resource (`DryRunResource(enabled=True)`) or `FISHNET_DRY_RUN=true`; the tag wins (it can also say
"false" where the deployment default is on).

A domain writes in a transaction as usual and ends it with `dry.finish(conn)`: commit normally,
roll back under dry run. So the counts it reports (what an upsert really inserted) are exact, and
nothing stays. External systems (HTTP, files, Nomad) are skipped with `if dry: ...`.

Example::

    from platform_assets.ops.dry_run import DryRun

    @asset(...)
    def positions(context, warehouse: WarehouseResource):
        dry = DryRun.from_context(context)
        with warehouse.connect() as conn:
            inserted = store_positions(conn, rows)   # the domain's store function
            sample = rows[:5]
            dry.finish(conn)                          # rollback under dry run
        return MaterializeResult(
            metadata={**row_count(total), **dry.would_write("positions.positions", inserted, sample)}
        )
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from dagster import MetadataValue

from resources.publisher import DryRunResource, parse_flag

if TYPE_CHECKING:
    import psycopg

DRY_RUN_TAG = "fishnet/dry_run"
SAMPLE_ROWS = 5
Origin = Literal["tag", "resource", "setting"]


def _plain(value: Any) -> Any:
    """A JSON-friendly form of a database value (dates, decimals, UUIDs, bytes)."""
    if isinstance(value, dt.date | dt.datetime | dt.time | decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(bytes(value))} bytes>"
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class DryRun:
    """Whether this run may write, and where that was decided."""

    enabled: bool
    origin: Origin = "setting"

    def __bool__(self) -> bool:
        return self.enabled

    @classmethod
    def from_tags(cls, tags: Mapping[str, str], resource: DryRunResource | None = None) -> DryRun:
        """The run tag `fishnet/dry_run` when set, else the resource, else FISHNET_DRY_RUN."""
        if DRY_RUN_TAG in tags:
            return cls(parse_flag(DRY_RUN_TAG, tags[DRY_RUN_TAG]), "tag")
        if resource is not None and resource.enabled is not None:
            return cls(resource.enabled, "resource")
        return cls(DryRunResource().is_enabled(), "setting")

    @classmethod
    def from_context(cls, context: Any, resource: DryRunResource | None = None) -> DryRun:
        """From an op/asset execution context: its run's tags, then the `dry_run` resource
        (passed, or found on the context), then the setting."""
        tags: Mapping[str, str] = {}
        run = getattr(context, "run", None)
        if run is not None:
            tags = run.tags
        if resource is None:
            resources = getattr(context, "resources", None)
            candidate = getattr(resources, "dry_run", None) if resources is not None else None
            if isinstance(candidate, DryRunResource):
                resource = candidate
        return cls.from_tags(tags, resource)

    def finish(self, conn: psycopg.Connection) -> None:
        """End the caller's transaction: commit, or roll back under dry run."""
        if self.enabled:
            conn.rollback()
        else:
            conn.commit()

    def metadata(self) -> dict[str, Any]:
        """The flag itself, for every materialisation of a run."""
        return {"dry_run": self.enabled}

    def would_write(
        self,
        target: str,
        rows: int,
        sample: Sequence[Mapping[str, Any] | Sequence[Any]] = (),
        *,
        columns: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Metadata of a write to `target` (a table, URL or path): the count, and under dry run
        the words 'would write' and a sample of the rows (at most 5)."""
        if not self.enabled:
            return {"dry_run": False, f"written/{target}": int(rows)}
        preview = []
        for row in list(sample)[:SAMPLE_ROWS]:
            if isinstance(row, Mapping):
                preview.append(_plain(dict(row)))
            elif columns is not None:
                preview.append(_plain(dict(zip(columns, row, strict=False))))
            else:
                preview.append(_plain(list(row)))
        return {
            "dry_run": True,
            f"would_write/{target}": int(rows),
            f"would_write_sample/{target}": MetadataValue.json(preview),
        }
