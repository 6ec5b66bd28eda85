"""The NAF quarantine: lines that could not be parsed, kept byte for byte, replayable."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from platform_assets.positions.store.adbc import copy_arrow, execute, frame


@dataclass(frozen=True)
class QuarantinedLine:
    """A NAF line that could not be parsed, as received."""

    source_file: str
    line_number: int
    raw: bytes
    error: str


def quarantine(conn: Any, items: Sequence[QuarantinedLine]) -> int:
    """Store bad lines; a line already there (same file, number, bytes) counts one more attempt."""
    if not items:
        return 0
    arrow = pa.table(
        {
            "source_file": pa.array([i.source_file for i in items], pa.string()),
            "line_number": pa.array([i.line_number for i in items], pa.int32()),
            # text for people: no NUL (PostgreSQL text cannot hold one); raw_bytes is exact
            "line": pa.array(
                [i.raw.decode("utf-8", "replace").replace("\x00", "\ufffd") for i in items],
                pa.string(),
            ),
            "raw_bytes": pa.array([i.raw for i in items], pa.binary()),
            "raw_sha256": pa.array([hashlib.sha256(i.raw).hexdigest() for i in items], pa.string()),
            "error": pa.array([i.error for i in items], pa.string()),
        }
    )
    execute(
        conn,
        "CREATE TEMP TABLE _quarantine_in (source_file text, line_number integer, line text, "
        "raw_bytes bytea, raw_sha256 text, error text) ON COMMIT DROP",
    )
    copy_arrow(conn, "_quarantine_in", arrow)
    execute(
        conn,
        """
        INSERT INTO positions.naf_quarantine
            (source_file, line_number, line, raw_bytes, raw_sha256, error)
        SELECT DISTINCT ON (source_file, line_number, raw_sha256)
               source_file, line_number, line, raw_bytes, raw_sha256, error
        FROM _quarantine_in
        ON CONFLICT (source_file, line_number, raw_sha256) DO UPDATE
        SET error = EXCLUDED.error, attempts = positions.naf_quarantine.attempts + 1,
            last_attempt_at = now()
        """,
    )
    execute(conn, "DROP TABLE _quarantine_in")
    return len(items)


def quarantined_lines(conn: Any, limit: int | None = None) -> pd.DataFrame:
    """The quarantine (id, file, line number, raw bytes, error), oldest first."""
    suffix = f" LIMIT {int(limit)}" if limit else ""
    return frame(
        conn,
        "SELECT id, source_file, line_number, raw_bytes, error, attempts "
        f"FROM positions.naf_quarantine ORDER BY source_file, line_number, id{suffix}",
    )


def release_quarantined(conn: Any, ids: Sequence[int]) -> None:
    """Remove lines from the quarantine (they were stored by a replay)."""
    for start in range(0, len(ids), 10_000):
        chunk = ",".join(str(int(i)) for i in ids[start : start + 10_000])
        execute(conn, f"DELETE FROM positions.naf_quarantine WHERE id IN ({chunk})")


def record_failed_attempt(conn: Any, failures: Sequence[tuple[int, str]]) -> None:
    """A replayed line still fails: keep it, with its new error and one more attempt."""
    for row_id, error in failures:
        execute(
            conn,
            "UPDATE positions.naf_quarantine SET error = $1, attempts = attempts + 1, "
            "last_attempt_at = now() WHERE id = $2",
            [error, int(row_id)],
        )
