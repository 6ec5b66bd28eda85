"""Pandas frames to and from warehouse tables: ADBC binary COPY in, Arrow out.

What `PostgresPandasIOManager` (io_managers.py) does with a frame, without Dagster's contexts: map
an asset key to its table, check the frame's columns against the table's, convert them to Arrow,
and write in one transaction (`replace`, `append` or `upsert`, optionally only a partition's
rows); read a table (or some of its columns, or a partition) back to pandas. Kept apart from the
IO manager so that defining it imports neither pandas nor pyarrow (issue #20).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from dagster import AssetKey, MetadataValue, TableColumn, TableSchema, TimeWindow

from resources.adbc_copy import adbc_copy
from resources.warehouse import WarehouseResource

WRITE_MODES = ("replace", "append", "upsert")
PREVIEW_ROWS = 5


class TableWriteError(ValueError):
    """A frame cannot be written to its table; nothing was written."""


@dataclass(frozen=True)
class TableRef:
    """A schema-qualified table name."""

    schema: str
    name: str

    @property
    def qualified(self) -> str:
        return f"{_ident(self.schema)}.{_ident(self.name)}"

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Column:
    """What the IO manager needs to know of a table column."""

    name: str
    type_name: str  # pg_type.typname: int8, text, timestamptz, jsonb, _text (text[]) ...
    nullable: bool
    has_default: bool
    generated: bool

    @property
    def arrow_type(self) -> pa.DataType:
        if self.type_name.startswith("_"):
            return pa.list_(_scalar_arrow_type(self.type_name[1:], self))
        return _scalar_arrow_type(self.type_name, self)


_SCALAR_TYPES: dict[str, pa.DataType] = {
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "bool": pa.bool_(),
    "text": pa.string(),
    "varchar": pa.string(),
    "bpchar": pa.string(),
    "name": pa.string(),
    "json": pa.string(),
    "jsonb": pa.binary(),  # binary COPY wants jsonb's wire format: version byte 1, then the text
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "timestamp": pa.timestamp("us"),
    "date": pa.date32(),
}


def _scalar_arrow_type(type_name: str, column: Column) -> pa.DataType:
    try:
        return _SCALAR_TYPES[type_name]
    except KeyError:
        raise TableWriteError(
            f"column {column.name!r} has type {type_name!r}, which the IO manager does not map; "
            f"use one of {sorted(_SCALAR_TYPES)} or arrays of them"
        ) from None


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: object) -> str:
    if isinstance(value, datetime | date):
        value = value.isoformat()
    return "'" + str(value).replace("'", "''") + "'"


def table_for(key: AssetKey, metadata: Mapping[str, Any] | None = None) -> TableRef:
    """The table of an asset: metadata `table` if given, else its key `[..., schema, table]`."""
    explicit = (metadata or {}).get("table")
    if explicit:
        schema, _, name = str(explicit).rpartition(".")
        return TableRef(schema or "public", name)
    if len(key.path) < 2:
        raise TableWriteError(
            f"asset {key.to_user_string()} needs a key prefix naming its schema, or `table` metadata"
        )
    return TableRef(key.path[-2], key.path[-1])


# --- introspection ----------------------------------------------------------------------------


def _fetch(cursor: Any, sql: str) -> list[tuple]:
    cursor.execute(sql)
    return cursor.fetchall()


def table_columns(cursor: Any, table: TableRef) -> list[Column]:
    """Columns of a table in order; raises if the table does not exist."""
    rows = _fetch(
        cursor,
        f"""
        SELECT a.attname, t.typname, NOT a.attnotnull,
               a.atthasdef OR a.attidentity <> '', a.attgenerated <> ''
        FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
        WHERE a.attrelid = to_regclass({_literal(table.qualified)})
          AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
        """,
    )
    if not rows:
        raise TableWriteError(f"table {table} does not exist: run `fishnet migrate`")
    return [Column(*row) for row in rows]


def primary_key(cursor: Any, table: TableRef) -> list[str]:
    """The primary key columns of a table, in key order."""
    rows = _fetch(
        cursor,
        f"""
        SELECT a.attname
        FROM pg_index i
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, pos)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = to_regclass({_literal(table.qualified)}) AND i.indisprimary
        ORDER BY k.pos
        """,
    )
    return [row[0] for row in rows]


def check_columns(frame: pd.DataFrame, columns: Sequence[Column], table: TableRef) -> list[Column]:
    """The table columns the frame writes, or an error naming the missing and extra columns."""
    by_name = {c.name: c for c in columns}
    given = [str(c) for c in frame.columns]
    extra = [c for c in given if c not in by_name or by_name[c].generated]
    missing = [
        c.name for c in columns if c.name not in given and not (c.has_default or c.generated)
    ]
    if extra or missing:
        parts = []
        if missing:
            parts.append(f"missing columns {missing}")
        if extra:
            parts.append(f"extra columns {extra}")
        raise TableWriteError(f"frame does not match table {table}: {'; '.join(parts)}")
    return [by_name[name] for name in given]


# --- pandas -> arrow ------------------------------------------------------------------------------


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NaT or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def _json_cells(series: pd.Series, binary: bool) -> pa.Array:
    prefix = b"\x01"
    values: list[bytes | str | None] = []
    for cell in series.tolist():
        if _is_missing(cell):
            values.append(None)
            continue
        text = json.dumps(cell, default=str, ensure_ascii=False)
        values.append(prefix + text.encode() if binary else text)
    return pa.array(values, type=pa.binary() if binary else pa.string())


def _list_cells(series: pd.Series, arrow_type: pa.DataType) -> pa.Array:
    values = [
        None
        if cell is None or (not isinstance(cell, list | tuple | np.ndarray) and _is_missing(cell))
        else list(cell)
        for cell in series.tolist()
    ]
    return pa.array(values, type=arrow_type)


def _timestamps(series: pd.Series, arrow_type: pa.TimestampType) -> pa.Array:
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        series = pd.to_datetime(series, utc=arrow_type.tz is not None, format="ISO8601")
    if arrow_type.tz is not None:
        series = (
            series.dt.tz_localize("UTC") if series.dt.tz is None else series.dt.tz_convert("UTC")
        )
    elif series.dt.tz is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    return pa.array(
        series.astype(f"datetime64[us{', UTC' if arrow_type.tz else ''}]"), type=arrow_type
    )


def column_to_arrow(series: pd.Series, column: Column) -> pa.Array:
    """Convert one frame column to the Arrow type that binary COPY needs for the table column."""
    arrow_type = column.arrow_type
    if series.isna().all():  # empty or all-null: the frame's dtype says nothing about the column
        return pa.nulls(len(series), type=arrow_type)
    try:
        if column.type_name in ("json", "jsonb"):
            return _json_cells(series, binary=column.type_name == "jsonb")
        if pa.types.is_list(arrow_type):
            return _list_cells(series, arrow_type)
        if pa.types.is_timestamp(arrow_type):
            return _timestamps(series, arrow_type)
        if pa.types.is_date32(arrow_type) and pd.api.types.is_datetime64_any_dtype(series.dtype):
            return pa.array(series.dt.date, type=arrow_type, from_pandas=True)
        if pa.types.is_string(arrow_type) and series.dtype == object:
            bad = [v for v in series.tolist() if not _is_missing(v) and not isinstance(v, str)]
            if bad:
                raise TypeError(f"non-text values such as {bad[0]!r}")
        array = pa.array(series, from_pandas=True)
        if pa.types.is_string(arrow_type) and not (
            pa.types.is_string(array.type) or pa.types.is_large_string(array.type)
        ):
            raise TypeError(f"{array.type} values are not text")
        return array.cast(arrow_type)
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        raise TableWriteError(
            f"column {column.name!r} cannot be written as {column.type_name}: {exc}"
        ) from exc


def frame_to_arrow(frame: pd.DataFrame, columns: Sequence[Column]) -> pa.Table:
    """The frame as an Arrow table shaped exactly like the target columns."""
    arrays = [column_to_arrow(frame[c.name], c) for c in columns]
    return pa.Table.from_arrays(arrays, names=[c.name for c in columns])


# --- writing --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartitionFilter:
    """The rows of one partition: a time window or a set of static keys on one column."""

    column: str
    window: TimeWindow | None = None
    keys: tuple[str, ...] = ()

    def where(self) -> str:
        col = _ident(self.column)
        if self.window is not None:
            return f"{col} >= {_literal(self.window.start)} AND {col} < {_literal(self.window.end)}"
        return f"{col} IN ({', '.join(_literal(k) for k in self.keys)})"

    def outside(self, frame: pd.DataFrame) -> pd.Series:
        """Rows of the frame that do not belong to the partition."""
        values = frame[self.column]
        if self.window is not None:
            ts = pd.to_datetime(values, utc=True)
            start = pd.Timestamp(self.window.start).tz_convert("UTC")
            end = pd.Timestamp(self.window.end).tz_convert("UTC")
            return ~((ts >= start) & (ts < end))
        return ~values.astype(str).isin(self.keys)


@dataclass(frozen=True)
class WriteResult:
    """What a write did, for asset metadata."""

    table: TableRef
    mode: str
    rows: int
    seconds: float
    columns: list[Column]


def write_frame(
    warehouse: WarehouseResource,
    frame: pd.DataFrame,
    table: TableRef,
    mode: str = "replace",
    partition: PartitionFilter | None = None,
) -> WriteResult:
    """Write a frame in one transaction; on any error nothing is written."""
    if mode not in WRITE_MODES:
        raise TableWriteError(f"unknown write_mode {mode!r} for {table}; use one of {WRITE_MODES}")
    started = time.perf_counter()
    with warehouse.adbc() as conn:
        cursor = conn.cursor()
        try:
            all_columns = table_columns(cursor, table)
            columns = check_columns(frame, all_columns, table)
            if partition is not None:
                if partition.column not in frame.columns:
                    raise TableWriteError(
                        f"partition column {partition.column!r} is not in the frame for {table}"
                    )
                stray = partition.outside(frame)
                if stray.any():
                    raise TableWriteError(
                        f"{int(stray.sum())} rows do not belong to the partition "
                        f"({partition.where()}) of {table}"
                    )
            data = frame_to_arrow(frame, columns)
            if mode == "upsert":
                _upsert(cursor, data, table, columns, frame)
            else:
                if mode == "replace":
                    # Serialise writers of this table (two replaces must not both keep their rows)
                    # while readers go on seeing the previous rows until commit.
                    cursor.execute(f"LOCK TABLE {table.qualified} IN SHARE ROW EXCLUSIVE MODE")
                    where = f" WHERE {partition.where()}" if partition else ""
                    cursor.execute(f"DELETE FROM {table.qualified}{where}")
                if data.num_rows:
                    adbc_copy(cursor, table.name, data, db_schema_name=table.schema)
            conn.commit()
        except Exception:
            conn.rollback()
            raise
        finally:
            cursor.close()
    effective = "partition_replace" if mode == "replace" and partition else mode
    return WriteResult(table, effective, len(frame), time.perf_counter() - started, all_columns)


def _upsert(
    cursor: Any, data: pa.Table, table: TableRef, columns: Sequence[Column], frame: pd.DataFrame
) -> None:
    key = primary_key(cursor, table)
    if not key:
        raise TableWriteError(f"upsert needs a primary key on {table}")
    missing_key = [k for k in key if k not in frame.columns]
    if missing_key:
        raise TableWriteError(f"upsert into {table} needs key columns {missing_key} in the frame")
    duplicated = frame.duplicated(subset=key, keep=False)
    if duplicated.any():
        sample = frame.loc[duplicated, key].drop_duplicates().head(5).to_dict("records")
        raise TableWriteError(f"upsert into {table}: duplicate keys in the frame, e.g. {sample}")
    stage = f"stage_{table.name}"
    names = ", ".join(_ident(c.name) for c in columns)
    # Only the written columns, without constraints: the target checks them on INSERT.
    cursor.execute(
        f"CREATE TEMPORARY TABLE {_ident(stage)} ON COMMIT DROP AS "
        f"SELECT {names} FROM {table.qualified} WITH NO DATA"
    )
    if data.num_rows:
        adbc_copy(cursor, stage, data, temporary=True)
    updates = [c.name for c in columns if c.name not in key]
    action = (
        "DO UPDATE SET " + ", ".join(f"{_ident(c)} = EXCLUDED.{_ident(c)}" for c in updates)
        if updates
        else "DO NOTHING"
    )
    cursor.execute(
        f"INSERT INTO {table.qualified} ({names}) SELECT {names} FROM {_ident(stage)} "
        f"ON CONFLICT ({', '.join(_ident(k) for k in key)}) {action}"
    )


# --- reading --------------------------------------------------------------------------------------


def read_frame(
    warehouse: WarehouseResource,
    table: TableRef,
    columns: Sequence[str] | None = None,
    partition: PartitionFilter | None = None,
) -> pd.DataFrame:
    """Read a table (optionally some columns, one partition) into pandas with stable dtypes."""
    with warehouse.adbc() as conn:
        cursor = conn.cursor()
        try:
            all_columns = table_columns(cursor, table)
            by_name = {c.name: c for c in all_columns}
            wanted = list(columns) if columns else [c.name for c in all_columns]
            unknown = [c for c in wanted if c not in by_name]
            if unknown:
                raise TableWriteError(f"table {table} has no columns {unknown}")
            select = ", ".join(
                f"{_ident(c)}::text AS {_ident(c)}"
                if by_name[c].type_name in ("json", "jsonb")
                else _ident(c)
                for c in wanted
            )
            where = f" WHERE {partition.where()}" if partition else ""
            cursor.execute(f"SELECT {select} FROM {table.qualified}{where}")
            data = cursor.fetch_arrow_table()
            conn.rollback()
        finally:
            cursor.close()
    return arrow_to_frame(data, [by_name[c] for c in wanted])


_NULLABLE_PANDAS: dict[pa.DataType, Any] = {
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def arrow_to_frame(data: pa.Table, columns: Sequence[Column]) -> pd.DataFrame:
    """Arrow to pandas: nullable int/bool columns as pandas' nullable dtypes, JSON parsed, arrays as lists."""
    out: dict[str, Any] = {}
    for column, array in zip(columns, data.columns, strict=True):
        if column.type_name in ("json", "jsonb"):
            out[column.name] = pd.Series(
                [None if v is None else json.loads(v) for v in array.to_pylist()], dtype=object
            )
        elif pa.types.is_list(array.type):
            out[column.name] = pd.Series(array.to_pylist(), dtype=object)
        elif column.nullable and array.type in _NULLABLE_PANDAS:
            out[column.name] = array.to_pandas(types_mapper=_NULLABLE_PANDAS.get)
        else:
            out[column.name] = array.to_pandas()
    return pd.DataFrame(out, columns=[c.name for c in columns])


# --- metadata -------------------------------------------------------------------------------------


def preview_markdown(frame: pd.DataFrame, rows: int = PREVIEW_ROWS) -> str:
    """A small markdown table of the first rows, for the asset's metadata."""
    head = frame.head(rows)
    cols = [str(c) for c in head.columns]

    def cell(value: object) -> str:
        text = (
            ""
            if value is None or (not isinstance(value, list | dict) and _is_missing(value))
            else str(value)
        )
        text = text.replace("|", "\\|").replace("\n", " ")
        return text if len(text) <= 40 else text[:37] + "..."

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += [
        "| " + " | ".join(cell(v) for v in row) + " |" for row in head.itertuples(index=False)
    ]
    return "\n".join(lines)


def write_metadata(result: WriteResult, frame: pd.DataFrame) -> dict[str, Any]:
    """The metadata every table asset reports."""
    return {
        "table": str(result.table),
        "dagster/table_name": str(result.table),
        "write_mode": result.mode,
        "dagster/row_count": result.rows,
        "duration_s": round(result.seconds, 3),
        "preview": MetadataValue.md(preview_markdown(frame)),
        "dagster/column_schema": TableSchema(
            columns=[
                TableColumn(
                    c.name, c.type_name.lstrip("_") + ("[]" if c.type_name.startswith("_") else "")
                )
                for c in result.columns
            ]
        ),
    }
