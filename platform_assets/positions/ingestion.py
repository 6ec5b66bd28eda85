"""Ingesting NAF inbox files, without Dagster: what the ingest op runs and the benchmark times.

One ADBC connection and one anchorage index for a whole run (opening an ADBC connection costs
about 0.2 s here: once per run, not per file). A thread reads and parses the blocks one ahead of
the load (``BlockReader``): parsing is mostly pyarrow and the load mostly waits on PostgreSQL
(ADBC releases the GIL while it copies or runs a statement), so the two overlap on the second
core, and the first block is parsed while the connection opens. Each block of a file is its own
transaction (``store.ingest_batch_committed``), so a run that stops half-way resumes without storing anything
twice; once a file's blocks are committed, its item goes to the ingestion catalog
(``ops.catalog``, repository ``positions``, source ``inbox``). Under dry run a file is one
transaction rolled back at its end (later blocks see the earlier ones, so the counts are those a
real run would report) and nothing is recorded.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from platform_assets.ops.catalog import ingested_hashes, record_item
from platform_assets.positions import store
from platform_assets.positions.geodesy import AnchorageIndex
from platform_assets.positions.inbox import (
    DOMAIN,
    INGEST_SOURCE,
    InboxFile,
    inbox_file_at,
    is_inbox_file,
    list_inbox,
    read_line_batches,
)
from resources.warehouse import WarehouseResource

if TYPE_CHECKING:
    from platform_assets.ops.incremental import Window


@dataclass
class Selection:
    """The files a run ingests, and why others are left out."""

    files: list[InboxFile]
    already_ingested: int = 0
    outside_window: int = 0
    missing: list[str] = field(default_factory=list)


def select_files(
    warehouse: WarehouseResource,
    inbox: Path,
    names: Sequence[str] = (),
    *,
    force: bool = False,
    window: Window | None = None,
) -> Selection:
    """The requested files (every inbox file when ``names`` is empty) that arrived in ``window``
    (by modification time, when a window is given) and that the catalog does not hold as
    ingested, by content hash as the sensor looks them up (all of them with ``force``)."""
    if names:
        paths = dict.fromkeys(inbox / name for name in names)  # an absolute name wins
        found = [p for p in paths if is_inbox_file(p)]
        missing = [str(p) for p in paths if p not in found]
        requested = [inbox_file_at(p) for p in found]
    else:
        requested, missing = list_inbox(inbox), []
    outside = 0
    if window is not None:
        inside = [f for f in requested if window.contains(_arrival(f.path))]
        outside, requested = len(requested) - len(inside), inside
    if force or not requested:
        return Selection(requested, 0, outside, missing)
    with warehouse.connect() as conn:
        done = ingested_hashes(conn, DOMAIN, [f.sha256 for f in requested])
    todo = [f for f in requested if f.sha256 not in done]
    return Selection(todo, len(requested) - len(todo), outside, missing)


def _arrival(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


_END_OF_FILE = object()


@dataclass
class _Failure:
    error: BaseException


class BlockReader:
    """Reads and parses the blocks of ``files`` in order in a thread, ``ahead`` blocks ahead of
    the consumer, which takes each file's blocks with ``blocks()`` (files in the same order).
    A read or parse error is raised by ``blocks()`` where it happened. Use as a context manager:
    leaving it stops the thread."""

    def __init__(self, files: Iterable[InboxFile], ahead: int = 1) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=ahead)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(list(files),), name="naf-block-reader", daemon=True
        )
        self._thread.start()

    def _run(self, files: list[InboxFile]) -> None:
        try:
            for inbox_file in files:
                for batch in read_line_batches(inbox_file.path):
                    if not self._put(store.parse_batch(inbox_file.path.name, batch)):
                        return
                if not self._put(_END_OF_FILE):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            self._put(_Failure(error))

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def blocks(self) -> Iterator[store.ParsedBatch]:
        """The next file's parsed blocks."""
        while True:
            item = self._queue.get()
            if item is _END_OF_FILE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def close(self) -> None:
        """Stop the thread (it may be blocked on a full queue)."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> BlockReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def ingestion_session(warehouse: WarehouseResource) -> Iterator[tuple[Any, AnchorageIndex, int]]:
    """One ADBC connection for a run, the anchorage index built once, and its cell count."""
    with warehouse.adbc() as conn:
        anchorages = store.read_anchorages(conn)
        conn.commit()
        yield conn, AnchorageIndex.from_frame(anchorages), len(anchorages)


def ingest_file(
    warehouse: WarehouseResource,
    inbox_file: InboxFile,
    anchorages: Any,
    run_id: str | None,
    *,
    conn: Any = None,
    dry_run: bool = False,
    blocks: Iterable[store.ParsedBatch] | None = None,
) -> store.IngestResult:
    """Stream one file into the tables, then record its catalog item (see the module
    docstring). ``conn``: an open ADBC connection to reuse (one is opened otherwise);
    ``anchorages``: a frame of ``reference.anchorages`` or an ``AnchorageIndex``;
    ``blocks``: the file's parsed blocks (from a run's ``BlockReader``; read here otherwise)."""
    if blocks is None:
        with BlockReader([inbox_file]) as reader:
            return ingest_file(
                warehouse,
                inbox_file,
                anchorages,
                run_id,
                conn=conn,
                dry_run=dry_run,
                blocks=reader.blocks(),
            )
    if conn is None:
        with warehouse.adbc() as own:
            return ingest_file(
                warehouse, inbox_file, anchorages, run_id, conn=own, dry_run=dry_run, blocks=blocks
            )
    index = (
        anchorages
        if isinstance(anchorages, AnchorageIndex)
        else AnchorageIndex.from_frame(anchorages)
    )
    total = store.IngestResult()
    name = inbox_file.path.name
    try:
        for batch in blocks:
            if dry_run:  # staged inserts: nothing can abort the file's one transaction
                total.add(store.ingest_batch(conn, name, batch, index, direct=False))
            else:
                total.add(store.ingest_batch_committed(conn, name, batch, index))
    finally:
        if dry_run:
            conn.rollback()
    if not dry_run:
        item = inbox_file.catalog_item(DOMAIN, INGEST_SOURCE).stored(
            total.load.inserted,
            run_id=run_id,
            details={
                "lines": total.lines,
                "positions": total.load.rows,
                "inserted": total.load.inserted,
                "duplicates": total.load.duplicates,
                "late_tracks": total.load.late_tracks,
                "quarantined": total.quarantined,
            },
            status="done" if not total.quarantined else "partial",
        )
        with warehouse.connect() as catalog:
            record_item(catalog, item)
            catalog.commit()
    return total


@dataclass
class RunTotals:
    """What a run of the ingestion did, for its metrics and metadata."""

    result: store.IngestResult = field(default_factory=store.IngestResult)
    files: int = 0
    files_with_new_positions: int = 0
    files_with_rejects: int = 0
    seconds: float = 0.0


def ingest_files(
    warehouse: WarehouseResource,
    files: Sequence[InboxFile],
    run_id: str | None,
    *,
    dry_run: bool = False,
    on_file: Callable[[int, InboxFile, store.IngestResult, RunTotals], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> RunTotals:
    """Ingest ``files`` in order over one connection; ``on_start(anchorage cells)`` once the
    anchorages are read, ``on_file(number, file, result, totals)`` after each file."""
    totals = RunTotals()
    started = time.perf_counter()
    with BlockReader(files) as reader, ingestion_session(warehouse) as (conn, index, cells):
        if on_start is not None:
            on_start(cells)
        for number, inbox_file in enumerate(files, start=1):
            result = ingest_file(
                warehouse,
                inbox_file,
                index,
                run_id,
                conn=conn,
                dry_run=dry_run,
                blocks=reader.blocks(),
            )
            totals.result.add(result)
            totals.files += 1
            totals.files_with_new_positions += 1 if result.load.inserted else 0
            totals.files_with_rejects += 1 if result.quarantined else 0
            totals.seconds = time.perf_counter() - started
            if on_file is not None:
                on_file(number, inbox_file, result, totals)
    totals.seconds = time.perf_counter() - started
    return totals
