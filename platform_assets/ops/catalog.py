"""The catalog of what was ingested (ops.ingested_files): what incremental runs skip."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg


def ingested_hashes(conn: psycopg.Connection, domain: str, hashes: Iterable[str]) -> set[str]:
    """Which of these content hashes the catalog already holds for a domain."""
    wanted = list(hashes)
    if not wanted:
        return set()
    rows = conn.execute(
        "SELECT sha256 FROM ops.ingested_files WHERE domain = %s AND sha256 = ANY(%s)",
        (domain, wanted),
    ).fetchall()
    return {row[0] for row in rows}


def record_ingested(
    conn: psycopg.Connection,
    domain: str,
    sha256: str,
    source_name: str,
    size_bytes: int | None,
    details: Mapping[str, Any],
    run_id: str | None = None,
    status: str = "done",
) -> None:
    """Record (or refresh) a catalog entry, in the caller's transaction with the data it covers."""
    conn.execute(
        """
        INSERT INTO ops.ingested_files (domain, sha256, source_name, size_bytes, status, details, run_id)
        VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s)
        ON CONFLICT (domain, sha256) DO UPDATE
        SET source_name = EXCLUDED.source_name, status = EXCLUDED.status,
            details = EXCLUDED.details, run_id = EXCLUDED.run_id, ingested_at = now()
        """,
        (domain, sha256, source_name, size_bytes, status, json.dumps(dict(details)), run_id),
    )
