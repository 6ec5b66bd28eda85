"""The Postgres IO manager: how every table asset is written and read.

An asset's key `[schema, table]` names its table (or metadata `table: "schema.table"`); the table
itself comes from a migration, never from here. Writes go through ADBC's binary COPY inside one
transaction, in the mode the asset's metadata asks for (`write_mode`):

- `replace`: the whole table, atomically (readers keep seeing the old rows until commit);
  on a partitioned asset, only the partition's rows (`partition_expr` names the column).
- `append`: insert the rows.
- `upsert`: COPY into a temporary table, then INSERT ... ON CONFLICT (primary key) DO UPDATE.

Reads return pandas, optionally only the columns an `AssetIn(metadata={"columns": [...]})` asks for.

Dry run (run tag `fishnet/dry_run=true`, else the `dry_run` resource, else FISHNET_DRY_RUN): the
frame is built as usual and nothing is written; the output metadata says how many rows would have
gone where, with a sample.
Downstream steps of the same run then read the table as it was.
The conversions and SQL live in table_io.py, imported when a step writes or reads.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dagster import (
    ConfigurableIOManager,
    InputContext,
    MetadataValue,
    MultiPartitionKey,
    OutputContext,
)

from resources.publisher import DryRunResource, parse_flag
from resources.warehouse import WarehouseResource

if TYPE_CHECKING:
    import pandas as pd

    from resources.table_io import PartitionFilter


DRY_RUN_TAG = "fishnet/dry_run"
"""The run tag of dry run (the same as platform_assets.ops.dry_run's, which resources cannot import)."""


def _is_dry_run(context: OutputContext, resource: DryRunResource) -> bool:
    """The run tag when set, else the `dry_run` resource, else the FISHNET_DRY_RUN setting."""
    try:
        tags: Mapping[str, str] = context.step_context.run_tags
    except Exception:  # an output context built outside a run (direct IO manager tests)
        tags = {}
    if DRY_RUN_TAG in tags:
        return parse_flag(DRY_RUN_TAG, tags[DRY_RUN_TAG])
    return resource.is_enabled()


# --- the IO manager -------------------------------------------------------------------------------


def _partition_filter(
    context: InputContext | OutputContext, metadata: Mapping[str, Any]
) -> "PartitionFilter | None":
    from resources.table_io import PartitionFilter, TableWriteError

    if not context.has_asset_partitions:
        return None
    column = metadata.get("partition_expr")
    if not column:
        raise TableWriteError(
            f"partitioned asset {context.asset_key.to_user_string()} needs `partition_expr` metadata"
        )
    try:
        return PartitionFilter(str(column), window=context.asset_partitions_time_window)
    except Exception:  # not a time-window partitioning: static keys
        keys = context.asset_partition_keys
        if any(isinstance(k, MultiPartitionKey) for k in keys):
            raise TableWriteError("multi-dimensional partitions are not supported") from None
        return PartitionFilter(str(column), keys=tuple(keys))


class PostgresPandasIOManager(ConfigurableIOManager):
    """Stores pandas frames in warehouse tables with binary COPY (see module docstring)."""

    warehouse: WarehouseResource
    # The code location's `dry_run` resource itself (configured at launch), so that run config
    # `resources: dry_run: config: enabled: true` reaches the IO manager too. Dagster resolves
    # nested resources from real annotations: this module has no `from __future__ import
    # annotations`.
    dry_run: DryRunResource

    def handle_output(self, context: OutputContext, obj: "pd.DataFrame | None") -> None:
        # pandas and pyarrow are imported by the steps that write or read, not by the definitions
        import pandas as pd

        from resources.table_io import (
            TableWriteError,
            preview_markdown,
            table_for,
            write_frame,
            write_metadata,
        )

        if obj is None:
            return
        if not isinstance(obj, pd.DataFrame):
            raise TableWriteError(
                f"{context.asset_key.to_user_string()} returned {type(obj).__name__}, not a DataFrame"
            )
        metadata = context.definition_metadata or {}
        table = table_for(context.asset_key, metadata)
        mode = str(metadata.get("write_mode", "replace"))
        partition = _partition_filter(context, metadata)
        if _is_dry_run(context, self.dry_run):
            context.log.info(f"DRY RUN: would write {len(obj)} rows to {table} ({mode})")
            context.add_output_metadata(
                {
                    "dry_run": True,
                    f"would_write/{table}": len(obj),
                    f"would_write_sample/{table}": MetadataValue.md(preview_markdown(obj, 5)),
                }
            )
            return
        result = write_frame(self.warehouse, obj, table, mode, partition)
        context.log.info(
            f"wrote {result.rows} rows to {table} ({result.mode}) in {result.seconds:.2f} s"
        )
        context.add_output_metadata(write_metadata(result, obj))

    def load_input(self, context: InputContext) -> "pd.DataFrame":
        from resources.table_io import read_frame, table_for

        upstream = context.upstream_output
        upstream_metadata = (upstream.definition_metadata if upstream else None) or {}
        table = table_for(context.asset_key, upstream_metadata)
        columns = (context.definition_metadata or {}).get("columns")
        partition = _partition_filter(context, upstream_metadata)
        return read_frame(self.warehouse, table, columns, partition)
