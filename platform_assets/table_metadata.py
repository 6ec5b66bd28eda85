"""What the Dagster catalog shows of a table asset: its name, column schema and row count.

Declared with the asset (so the UI shows the columns before the first run), not only reported at
runtime. The keys are Dagster's documented `dagster/...` metadata keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dagster import TableColumn, TableSchema

Column = tuple[str, str, str]
"""(name, type, description)"""


def table_metadata(table: str, columns: Sequence[Column], **extra: Any) -> dict[str, Any]:
    """Definition metadata of an asset stored as `table` (schema-qualified)."""
    return {
        "dagster/table_name": table,
        "dagster/column_schema": TableSchema(
            columns=[TableColumn(name, type_, description=text) for name, type_, text in columns]
        ),
        **extra,
    }


def row_count(count: int, **extra: Any) -> dict[str, Any]:
    """Materialisation metadata: the table's row count (and anything else worth a glance)."""
    return {"dagster/row_count": int(count), **extra}


def column_names(metadata: Mapping[str, Any]) -> list[str]:
    """The declared column names of an asset's metadata (for tests and checks)."""
    schema = metadata.get("dagster/column_schema")
    return [column.name for column in schema.columns] if schema is not None else []
