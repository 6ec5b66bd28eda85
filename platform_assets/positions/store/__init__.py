"""SQL of the positions domain. No Dagster here: every function takes an open ADBC connection
(binary COPY from Arrow, Arrow results) and leaves the commit to the caller.

- ``partitions``: daily partitions of ``positions.positions``, created ahead / on demand, retention
- ``load``: one batch stored idempotently and enriched from each track's carried state
- ``reenrich``: tracks re-enriched from a past instant (late records, backfills)
- ``state``: tracks and their carried enrichment state (``positions.track_state``)
- ``writes``: staging COPY + ``INSERT ... ON CONFLICT``, in-place updates of revised rows
- ``quarantine``: bad lines kept byte for byte; ``ingest``: lines -> quarantine + load, replay
- ``last_positions``: ``positions.last_positions`` refreshed in one transaction
- ``reading``, ``schema``, ``adbc``: reads, column lists and frame types, connection helpers

This module re-exports what the Dagster layer, the tests and the benchmark use.
"""

from platform_assets.positions import naf
from platform_assets.positions.store.ingest import (
    IngestResult,
    ParsedBatch,
    ingest_batch,
    ingest_batch_committed,
    parse_batch,
    replay_quarantine,
)
from platform_assets.positions.store.last_positions import (
    read_last_positions,
    refresh_last_positions,
)
from platform_assets.positions.store.load import load_positions
from platform_assets.positions.store.partitions import (
    apply_retention,
    ensure_partitions,
    ensure_partitions_ahead,
    partition_days,
)
from platform_assets.positions.store.reading import (
    count_positions,
    read_anchorages,
    read_positions,
)
from platform_assets.positions.store.reenrich import reenrich_since
from platform_assets.positions.store.schema import (
    ENRICHED_COLUMNS,
    POSITION_COLUMNS,
    normalise_parsed,
)
from platform_assets.positions.store.writes import NaturalKeyConflict

__all__ = [
    "ENRICHED_COLUMNS",
    "POSITION_COLUMNS",
    "IngestResult",
    "NaturalKeyConflict",
    "ParsedBatch",
    "apply_retention",
    "count_positions",
    "ensure_partitions",
    "ensure_partitions_ahead",
    "ingest_batch",
    "ingest_batch_committed",
    "load_positions",
    "naf",
    "normalise_parsed",
    "parse_batch",
    "partition_days",
    "read_anchorages",
    "read_last_positions",
    "read_positions",
    "reenrich_since",
    "refresh_last_positions",
    "replay_quarantine",
]
