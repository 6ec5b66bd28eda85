"""Publish a table or view: CSV files, and JSON batches to an upsert endpoint (Socrata style).

Each row carries a stable `record_id`: a hash of its key columns (the primary key of a table, or
the columns named for a view), so the endpoint upserts and publishing again never duplicates.
PostgreSQL itself turns each row into its JSON object (`row_to_json`, with the record id in
front) and a server-side cursor streams them in chunks of 10,000: memory holds one chunk or two,
never the table, and the JSON work runs on the database's core while Python only joins bytes
and sends. Timestamps are published in UTC (the transaction's TimeZone), so record ids and
values do not depend on the session.

No Dagster here (ops/jobs.py is the job). Example::

    from platform_assets.ops.publish import publish_json, export_csv

    with warehouse.connect() as conn, publisher.sender() as sender:
        summary = publish_json(conn, "positions.last_positions", sender, key=["vessel_id"])
    print(summary.rows, [c.as_dict() for c in summary.chunks])
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

CHUNK_ROWS = 10_000
RECORD_ID = "record_id"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


class PublishError(RuntimeError):
    """A relation or key that cannot be published (names the relation)."""


class BatchSender(Protocol):
    """What sends one JSON batch (resources.publisher.HttpBatchSender)."""

    def send(self, body: bytes, label: str) -> Any: ...


@dataclass(frozen=True)
class Relation:
    """A table or view to publish, its columns in order and the key of its record ids."""

    schema: str
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)


def resolve_relation(
    conn: psycopg.Connection, name: str, key: Sequence[str] | None = None
) -> Relation:
    """Look up `schema.relation` (default schema public) and its key: `key` when given, else the
    table's primary key; a view without `key` is refused (its rows would have no identity)."""
    if not _NAME.match(name):
        raise PublishError(f"{name!r} is not a relation name (schema.table)")
    schema, _, relname = name.rpartition(".")
    schema = schema or "public"
    found = conn.execute(
        "SELECT c.oid, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
        (schema, relname),
    ).fetchone()
    if found is None:
        raise PublishError(f"no table or view {schema}.{relname}")
    oid = found[0]
    columns = tuple(
        row[0]
        for row in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum",
            (oid,),
        )
    )
    if RECORD_ID in columns:
        raise PublishError(f"{schema}.{relname} has a column {RECORD_ID!r}: it is reserved")
    if key:
        chosen = tuple(key)
    else:
        chosen = tuple(
            row[0]
            for row in conn.execute(
                "SELECT a.attname FROM pg_index i "
                "JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
                "WHERE i.indrelid = %s AND i.indisprimary ORDER BY k.n",
                (oid,),
            )
        )
    if not chosen:
        raise PublishError(
            f"{schema}.{relname} has no primary key: name its key columns (run config `key`)"
        )
    unknown = [c for c in chosen if c not in columns]
    if unknown:
        raise PublishError(f"key column(s) {unknown} are not columns of {schema}.{relname}")
    return Relation(schema, relname, columns, chosen)


def record_id_sql(key: Sequence[str], alias: str = "t") -> sql.Composable:
    """The record id expression: 32 hex digits of sha256 over the JSON array of the key values."""
    values = sql.SQL(", ").join(sql.Identifier(alias, column) for column in key)
    return sql.SQL(
        "left(encode(sha256(convert_to(json_build_array({})::text, 'UTF8')), 'hex'), 32)"
    ).format(values)


def _utc(conn: psycopg.Connection) -> None:
    # record ids and published timestamps must not depend on the session's time zone
    conn.execute("SET LOCAL TimeZone = 'UTC'")


@dataclass(frozen=True)
class ChunkSummary:
    """What happened to one chunk."""

    number: int
    rows: int
    bytes: int
    created: int = 0
    updated: int = 0
    errors: int = 0
    attempts: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PublishSummary:
    """A whole publication: where, how many rows, and each chunk."""

    relation: str
    destination: str
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    chunks: list[ChunkSummary] = field(default_factory=list)
    sample: list[str] = field(default_factory=list)


def json_chunks(
    conn: psycopg.Connection, relation: Relation, chunk_rows: int = CHUNK_ROWS
) -> Iterator[tuple[int, bytes]]:
    """(row count, JSON array bytes) per chunk, streamed through a server-side cursor.

    Runs in the caller's transaction (a server-side cursor needs one; autocommit is refused).
    """
    if conn.autocommit:
        raise PublishError(f"publishing {relation.qualified} needs a transaction, not autocommit")
    if chunk_rows <= 0:
        raise PublishError(f"chunk size {chunk_rows} must be positive")
    _utc(conn)
    query = sql.SQL(
        "SELECT convert_to('{{\"" + RECORD_ID + "\":\"' || {rid} || '\",' "
        "|| substr(row_to_json(t)::text, 2), 'UTF8') FROM {rel} AS t"
    ).format(rid=record_id_sql(relation.key), rel=relation.identifier)
    with conn.cursor(name=f"publish_{uuid.uuid4().hex[:12]}", binary=True) as cursor:
        cursor.itersize = chunk_rows
        cursor.execute(query)
        while True:
            rows = cursor.fetchmany(chunk_rows)
            if not rows:
                return
            yield len(rows), b"[" + b",".join([row[0] for row in rows]) + b"]"


def publish_json(
    conn: psycopg.Connection,
    name: str,
    sender: BatchSender | None,
    *,
    key: Sequence[str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    destination: str = "",
    on_chunk: Callable[[ChunkSummary], None] | None = None,
) -> PublishSummary:
    """Send the relation as JSON batches; with `sender=None` (dry run) build them and send none.

    The next chunk is read and built while the previous one is in flight (one at a time, in
    order). A batch that still fails after the sender's retries raises, naming its chunk.
    """
    relation = resolve_relation(conn, name, key)
    summary = PublishSummary(relation.qualified, destination, dry_run=sender is None)
    started = time.perf_counter()

    def finish(number: int, rows: int, size: int, result: Any) -> None:
        chunk = ChunkSummary(
            number,
            rows,
            size,
            created=getattr(result, "created", 0),
            updated=getattr(result, "updated", 0),
            errors=getattr(result, "errors", 0),
            attempts=getattr(result, "attempts", 0),
            seconds=round(getattr(result, "seconds", 0.0), 4),
        )
        summary.chunks.append(chunk)
        if on_chunk is not None:
            on_chunk(chunk)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish") as pool:
        in_flight: tuple[int, int, int, Future[Any]] | None = None
        for number, (rows, body) in enumerate(json_chunks(conn, relation, chunk_rows), start=1):
            summary.rows += rows
            summary.bytes += len(body)
            if not summary.sample:
                summary.sample = _first_objects(body)
            if sender is None:
                finish(number, rows, len(body), None)
                continue
            label = f"chunk {number} of {relation.qualified}"
            future = pool.submit(sender.send, body, label)
            if in_flight is not None:
                finish(in_flight[0], in_flight[1], in_flight[2], in_flight[3].result())
            in_flight = (number, rows, len(body), future)
        if in_flight is not None:
            finish(in_flight[0], in_flight[1], in_flight[2], in_flight[3].result())
    summary.seconds = time.perf_counter() - started
    return summary


def _first_objects(body: bytes, count: int = 5) -> list[str]:
    """The first JSON objects of a batch, as text (a sample for dry runs and logs)."""
    sample: list[str] = []
    depth, start, in_string, escaped = 0, 0, False, False
    for index, byte in enumerate(body[1:-1], start=1):
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte == 0x7B:  # {
            if depth == 0:
                start = index
            depth += 1
        elif byte == 0x7D:  # }
            depth -= 1
            if depth == 0:
                sample.append(body[start : index + 1].decode("utf-8"))
                if len(sample) == count:
                    break
    return sample


def export_csv(
    conn: psycopg.Connection,
    name: str,
    directory: Path,
    *,
    key: Sequence[str] | None = None,
    dry_run: bool = False,
) -> PublishSummary:
    """Write the relation (record id first) to `<directory>/<schema>.<relation>.csv` with COPY,
    streamed to a temporary file renamed at the end; under dry run only count the rows."""
    relation = resolve_relation(conn, name, key)
    target = directory / f"{relation.qualified}.csv"
    summary = PublishSummary(relation.qualified, str(target), dry_run=dry_run)
    started = time.perf_counter()
    _utc(conn)
    if dry_run:
        summary.rows = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(relation.identifier)
        ).fetchone()[0]  # type: ignore[index]
        summary.seconds = time.perf_counter() - started
        return summary
    directory.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    query = sql.SQL(
        "COPY (SELECT {rid} AS {record_id}, t.* FROM {rel} AS t) TO STDOUT WITH (FORMAT csv, HEADER)"
    ).format(
        rid=record_id_sql(relation.key),
        record_id=sql.Identifier(RECORD_ID),
        rel=relation.identifier,
    )
    try:
        with partial.open("wb") as out, conn.cursor() as cursor:
            with cursor.copy(query) as copy:
                for data in copy:
                    out.write(data)
                    summary.bytes += len(data)
            summary.rows = max(cursor.rowcount, 0)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    summary.seconds = time.perf_counter() - started
    return summary
