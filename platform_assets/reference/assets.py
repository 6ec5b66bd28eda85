"""Dagster layer of the reference tables: read each source, gate the frame, hand it to the IO manager.

Every asset returns a frame that `PostgresPandasIOManager` writes to `reference.<name>` (replace,
atomically; fleet segments upsert by (year, segment)). Before returning it, the asset evaluates its
gate checks (keys, row-count drop); a failing gate, like a malformed source, raises before the
return, so nothing is written and the previous table stays as it was.
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    Config,
    Failure,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field

from platform_assets.reference.checks import (
    MAX_ROW_DROP,
    PORTS,
    SCHEMA,
    KeyRule,
    drop_check,
    gate_check_specs,
    key_check,
    previous_row_count,
)
from platform_assets.reference.columns import COLUMNS
from platform_assets.reference.readers import (
    DISTRICTS,
    FISHING_GEAR_CODES,
    FLEET_SEGMENTS,
    SPECIES,
    ReferenceSourceError,
    TableSpec,
    default_data_dir,
    read_districts,
    read_fishing_gear_codes,
    read_fleet_segments,
    read_ports,
    read_species,
)
from platform_assets.reference.readers import PORTS as PORTS_SPEC
from platform_assets.reference.vessels import read_vessels
from platform_assets.table_metadata import table_metadata
from resources.reference_files import ReferenceFile, ReferenceFilesResource
from resources.source_db import SourceDatabaseResource
from resources.warehouse import WarehouseResource

if TYPE_CHECKING:
    import pandas as pd
    from pandas import DataFrame
else:
    # Dagster resolves asset annotations when the definitions load; pandas is imported by the
    # steps that build frames, not by the definitions (issue #20).
    DataFrame = Any

GROUP = "reference"


class ReferenceRefreshConfig(Config):
    """Run config shared by the reference assets."""

    allow_large_drop: bool = Field(
        default=False,
        description=f"accept a refresh with more than {MAX_ROW_DROP:.0%} fewer rows than the "
        "previous materialisation",
    )


class AnchoragesConfig(ReferenceRefreshConfig):
    """How port anchorages are drawn."""

    resolution: int = Field(default=9, description="H3 resolution of the cells")
    ring_k: int = Field(default=2, description="rings of cells around each port's own cell")
    positions_lookback_days: int = Field(
        default=30, ge=0, description="stationary positions of this many days make anchorages"
    )
    min_stops: int = Field(
        default=3, ge=1, description="distinct (vessel, day) stops that make a cell an anchorage"
    )
    max_port_distance_m: float = Field(
        default=5_000.0, gt=0, description="farther from every port, a stop is drifting at sea"
    )


# --- shared steps ---------------------------------------------------------------------------


STATIONARY_KNOTS = 0.5


def stationary_positions(warehouse: WarehouseResource, days: int) -> "pd.DataFrame":
    """Positions of the last `days` days at most STATIONARY_KNOTS, as anchorages need them (a
    track stands for a vessel); empty when none are stored yet."""
    import pandas as pd

    with warehouse.connect() as conn:
        rows = conn.execute(
            "SELECT track_id, latitude, longitude, speed, datetime_utc FROM positions.positions "
            "WHERE datetime_utc > now() - make_interval(days => %s) AND speed <= %s",
            (days, STATIONARY_KNOTS),
        ).fetchall()
    return pd.DataFrame(
        rows, columns=["vessel_id", "latitude", "longitude", "speed", "datetime_utc"]
    ).astype({"latitude": "float64", "longitude": "float64", "speed": "float64"})


def _read(table: str, source: str, read: Callable[[], "pd.DataFrame"]) -> "pd.DataFrame":
    """Run a reader; a bad source becomes a Failure that names it (nothing is written)."""
    try:
        return read()
    except ReferenceSourceError as exc:
        raise Failure(
            description=f"{SCHEMA}.{table} not refreshed, the previous table is kept: {exc}",
            metadata={"source": source},
        ) from exc


def _gated_output(
    context: AssetExecutionContext,
    frame: "pd.DataFrame",
    config: ReferenceRefreshConfig,
    keys: list[KeyRule],
    metadata: dict[str, Any],
) -> Iterator[Output | AssetCheckResult]:
    """Evaluate the gates; return the frame for writing only when they pass, else raise."""
    table = context.asset_key.path[-1]
    previous = previous_row_count(context.instance, context.asset_key)
    results = [key_check(frame, keys), drop_check(previous, len(frame), config.allow_large_drop)]
    failed = [r for r in results if not r.passed]
    if failed:
        yield from results
        raise Failure(
            description=f"{SCHEMA}.{table} not refreshed, the previous table is kept: "
            + "; ".join(f"{r.check_name}: {r.description}" for r in failed),
            metadata={"failed_checks": [r.check_name for r in failed], **metadata},
            allow_retries=False,  # the same rows would fail the same way
        )
    yield Output(frame, metadata=metadata)
    yield from results


def _spec_keys(spec: TableSpec) -> list[KeyRule]:
    return [KeyRule(spec.key)]


def _counts(series: "pd.Series") -> MetadataValue:
    counts = series.fillna("(none)").value_counts()
    return MetadataValue.json({str(k): int(v) for k, v in counts.items()})


# --- assets ---------------------------------------------------------------------------------


@asset(
    key_prefix=SCHEMA,
    group_name=GROUP,
    check_specs=gate_check_specs("vessels"),
    description="Fishing vessels of the registry (Oracle NAVIRES tables): identity, size, gears, "
    "district, registry port, owner and operator.",
    kinds={"postgres", "pandas", "oracle"},
    metadata=table_metadata(f"{SCHEMA}.vessels", COLUMNS["vessels"], write_mode="replace"),
)
def vessels(
    context: AssetExecutionContext,
    config: ReferenceRefreshConfig,
    source_db: SourceDatabaseResource,
) -> Iterator[Output | AssetCheckResult]:
    """Read the registry in one read-only transaction, then gate and write."""
    source = source_db.describe()
    frame = _read("vessels", source, lambda: read_vessels(source_db))
    gears = {code for codes in frame["declared_fishing_gears"] for code in codes}
    metadata = {
        "source": source,
        "vessels_by_flag_state": _counts(frame["flag_state"]),
        "active_vessels": int(frame["is_active"].sum()),
        "district_count": int(frame["district_code"].nunique()),
        "registry_port_count": int(frame["registry_port_locode"].nunique()),
        "declared_gear_count": len(gears),
    }
    # vessel_id is the table's key; CFR identifies a vessel for the positions and logbook joins,
    # so it must not repeat either (some small or foreign vessels have none).
    keys = [KeyRule(("vessel_id",)), KeyRule(("cfr",), nullable=True)]
    yield from _gated_output(context, frame, config, keys, metadata)


def file_table_asset(
    name: str,
    *,
    source: ReferenceFile,
    read: Callable[[Path], "pd.DataFrame"],
    spec: TableSpec,
    description: str,
    describe: Callable[["pd.DataFrame"], dict[str, Any]],
    write_mode: Literal["replace", "upsert"] = "replace",
) -> AssetsDefinition:
    """A reference table read from a bundled (or configured) file: read, gate, write.

    ``describe`` gives the asset's metadata beyond its source (counts that let an operator see
    at a glance whether a refresh looks right).
    """

    @asset(
        name=name,
        key_prefix=SCHEMA,
        group_name=GROUP,
        check_specs=gate_check_specs(name),
        description=description,
        kinds={"postgres", "pandas", "csv" if source.endswith("csv") else "yaml"},
        metadata=table_metadata(
            f"{SCHEMA}.{name}", COLUMNS[name], write_mode=write_mode, source_file=source
        ),
    )
    def _table(
        context: AssetExecutionContext,
        config: ReferenceRefreshConfig,
        reference_files: ReferenceFilesResource,
    ) -> Iterator[Output | AssetCheckResult]:
        path = reference_files.path(source, default_data_dir())
        frame = _read(name, str(path), lambda: read(path))
        metadata = {"source": str(path), **describe(frame)}
        yield from _gated_output(context, frame, config, _spec_keys(spec), metadata)

    return _table


species = file_table_asset(
    "species",
    source="species_csv",
    read=read_species,
    spec=SPECIES,
    description="FAO ASFIS species (3-alpha code, scientific, English and French names).",
    describe=lambda frame: {"isscaap_group_count": int(frame["isscaap_group"].nunique())},
)

fishing_gear_codes = file_table_asset(
    "fishing_gear_codes",
    source="fishing_gear_codes_csv",
    read=read_fishing_gear_codes,
    spec=FISHING_GEAR_CODES,
    description="ISSCFG fishing gear codes with their name and group.",
    describe=lambda frame: {
        "gear_count": int(frame["gear_code"].nunique()),
        "gears_by_group": _counts(frame["gear_group"]),
    },
)

ports = file_table_asset(
    "ports",
    source="ports_csv",
    read=read_ports,
    spec=PORTS_SPEC,
    description="Ports by UN/LOCODE with position, facade, FAO areas and whether active.",
    describe=lambda frame: {
        "ports_by_country": _counts(frame["country_code_iso2"]),
        "active_ports": int(frame["is_active"].sum()),
        "facade_count": int(frame["facade"].nunique()),
    },
)

districts = file_table_asset(
    "districts",
    source="districts_csv",
    read=read_districts,
    spec=DISTRICTS,
    description="French maritime districts (quartiers maritimes) with department and facade.",
    describe=lambda frame: {
        "district_count": int(frame["district_code"].nunique()),
        "districts_by_facade": _counts(frame["facade"]),
    },
)

fleet_segments = file_table_asset(
    "fleet_segments",
    source="fleet_segments_dir",
    read=read_fleet_segments,
    spec=FLEET_SEGMENTS,
    description="Fleet segments of each year's control plan (gears, areas, target species, "
    "impact risk). Upserted by (year, segment): years no longer in the folder are kept.",
    describe=lambda frame: {
        "segments_by_year": MetadataValue.json(
            {str(year): int(n) for year, n in frame.groupby("year").size().items()}
        )
    },
    write_mode="upsert",
)


@asset(
    key_prefix=SCHEMA,
    group_name=GROUP,
    ins={
        "ports": AssetIn(
            key=PORTS, metadata={"columns": ["locode", "latitude", "longitude", "is_active"]}
        )
    },
    check_specs=gate_check_specs("anchorages"),
    description="H3 cells where a vessel counts as at port: each active port's cell and its "
    "k-ring, a cell shared by two ports going to the nearer.",
    kinds={"postgres", "pandas", "h3"},
    metadata=table_metadata(f"{SCHEMA}.anchorages", COLUMNS["anchorages"], write_mode="replace"),
)
def anchorages(
    context: AssetExecutionContext,
    config: AnchoragesConfig,
    ports: DataFrame,
    warehouse: WarehouseResource,
) -> Iterator[Output | AssetCheckResult]:
    """Anchorages from the ports, and from cells where vessels were seen stopped near a port.

    The positions are read from the warehouse without a declared dependency: positions are
    enriched with these anchorages, so a dependency would be a cycle in the graph; each refresh
    uses the positions stored so far.
    """
    # h3, numpy and pandas: imported by this step, not by the definitions
    from platform_assets.reference.anchorages import (
        anchorages_from_ports,
        anchorages_from_stationary_positions,
        merge_anchorages,
    )

    try:
        from_ports = anchorages_from_ports(ports, config.resolution, config.ring_k)
    except ValueError as exc:  # bad config: resolution or ring out of range
        raise Failure(description=f"{SCHEMA}.anchorages not refreshed: {exc}") from exc
    stationary = stationary_positions(warehouse, config.positions_lookback_days)
    from_positions = anchorages_from_stationary_positions(
        stationary,
        ports,
        min_stops=config.min_stops,
        resolution=config.resolution,
        max_port_distance_m=config.max_port_distance_m,
    )
    frame = merge_anchorages(from_ports, from_positions)
    metadata = {
        "source": f"{SCHEMA}.ports (active ports, H3 resolution {config.resolution}, "
        f"k-ring {config.ring_k}) and positions.positions (stops of the last "
        f"{config.positions_lookback_days} days)",
        "ports_covered": int(frame["port_locode"].nunique()),
        "cells_from_ports": len(from_ports),
        "cells_from_positions": len(from_positions),
    }
    yield from _gated_output(context, frame, config, [KeyRule(("h3",))], metadata)


REFERENCE_ASSETS = [
    vessels,
    species,
    fishing_gear_codes,
    ports,
    districts,
    fleet_segments,
    anchorages,
]
