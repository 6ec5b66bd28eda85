"""Small helpers on an open ADBC connection: statements, Arrow results as frames, binary COPY.

Every store module goes through these so a cursor is always closed, even on error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import pyarrow as pa

from resources.adbc_copy import adbc_copy


def execute(conn: Any, sql: str, params: Sequence[Any] | None = None) -> None:
    """Run one statement, discarding any result."""
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
    finally:
        cur.close()


def rows(conn: Any, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    """A query's rows as tuples (small results)."""
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
        return list(cur.fetchall())
    finally:
        cur.close()


def scalar(conn: Any, sql: str, params: Sequence[Any] | None = None) -> Any:
    """The first column of the first row, or None."""
    found = rows(conn, sql, params)
    return found[0][0] if found else None


def frame(conn: Any, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
    """A query's result as a frame, read as Arrow (nullable booleans and integers kept)."""
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
        table = cur.fetch_arrow_table()
    finally:
        cur.close()
    return table.to_pandas(types_mapper=_types_mapper)


def _types_mapper(dtype: pa.DataType) -> Any:
    if pa.types.is_boolean(dtype):
        return pd.BooleanDtype()
    if pa.types.is_integer(dtype):
        return pd.Int64Dtype()
    return None


def copy_into(
    conn: Any, table: str, data: pd.DataFrame, columns: Sequence[str], schema: str = "pg_temp"
) -> None:
    """Binary COPY of ``data[columns]`` into an existing table (temporary by default)."""
    if data.empty:
        return
    arrow = pa.Table.from_pandas(data[list(columns)], preserve_index=False)
    copy_arrow(conn, table, arrow, schema)


def copy_arrow(conn: Any, table: str, arrow: pa.Table, schema: str = "pg_temp") -> None:
    """Binary COPY of an Arrow table into an existing table (temporary by default)."""
    cur = conn.cursor()
    try:
        adbc_copy(cur, table, arrow, db_schema_name=schema)
    finally:
        cur.close()
