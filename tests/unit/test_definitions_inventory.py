"""Every asset, check, job, sensor and schedule of the code location, listed: a removal shows here."""

from __future__ import annotations

from dagster import DefaultSensorStatus

from platform_assets.definitions import defs

ASSETS = {
    "alerts/beacon_malfunctions",
    "alerts/missing_dep_alerts",
    "alerts/missing_far_alerts",
    "alerts/pending_alerts",
    "alerts/position_alerts",
    "alerts/zones",
    "positions/last_positions",
    "positions/positions",
    "pois/activity",
    "pois/address",
    "pois/address_poi",
    "pois/events_normalised",
    "pois/events_raw",
    "pois/facilities_normalised",
    "pois/facilities_raw",
    "pois/poi",
    "pois/poi_history",
    "pois/registered_poi",
    "logbook/logbook_raw_messages",
    "logbook/logbook_reports",
    "logbook/logbook_reports_resolved",
    "processing/input",
    "processing/nomad_job_dispatch",
    "processing/processing_status",
    "processing/processing_task",
    "processing/product",
    "processing/virtual_machine",
    "reference/anchorages",
    "reference/districts",
    "reference/fishing_gear_codes",
    "reference/fleet_segments",
    "reference/ports",
    "reference/species",
    "reference/vessels",
}
REFERENCE_TABLES = (
    "anchorages",
    "districts",
    "fishing_gear_codes",
    "fleet_segments",
    "ports",
    "species",
    "vessels",
)
CHECKS = {
    "no_quarantined_messages@logbook/logbook_reports",
    "usual_level_logbook_ingest_job_inbox@logbook/logbook_reports",
    "declared_gears_known@reference/vessels",
    "district_codes_known@reference/vessels",
    "registry_ports_known@reference/vessels",
    "every_input_planned@processing/input",
    "last_positions_one_row_per_track@positions/last_positions",
    "no_quarantined_naf_lines@positions/positions",
    "usual_level_positions_ingest_job_inbox@positions/positions",
    "pending_alerts_have_evidence@alerts/pending_alerts",
    "active_pois_have_valid_address@pois/poi",
    "insee_codes_valid@pois/address",
    "no_duplicate_source_ids@pois/registered_poi",
    "transform_failure_share_below_limit@pois/events_normalised",
    "transform_failure_share_below_limit@pois/facilities_normalised",
    "usual_extract_volume@pois/events_raw",
    "usual_extract_volume@pois/facilities_raw",
    "specifications_are_usable@alerts/position_alerts",
    "no_task_failed_for_good@processing/processing_task",
    *(f"no_large_row_drop@reference/{t}" for t in REFERENCE_TABLES),
    *(f"unique_non_null_keys@reference/{t}" for t in REFERENCE_TABLES),
}
JOBS = {
    "alerts_job",
    "frequent_alerts_job",
    "positions_ingest_job",
    "positions_partition_maintenance_job",
    "positions_replay_job",
    "publish_job",
    "pois_refresh_job",
    "pois_replay_job",
    "all_assets_job",
    "logbook_ingest_job",
    "logbook_replay_job",
    "processing_change_feed_prune_job",
    "processing_harvest_job",
    "processing_launcher_job",
    "processing_orchestrator_job",
    "processing_status_job",
    "reference_job",
}
SENSORS = {
    "processing_job_status_sensor",
    "logbook_inbox_sensor",
    "naf_inbox_sensor",
    *(
        f"{consumer}{lane}"
        for consumer in (
            "processing_new_inputs_sensor",
            "processing_new_products_sensor",
            "processing_ready_tasks_sensor",
        )
        for lane in ("", "_lane_2", "_lane_3")
    ),
}
SCHEDULES = {
    "alerts_schedule",
    "pois_daily_schedule",
    "frequent_alerts_schedule",
    "positions_partition_maintenance_schedule",
    "processing_change_feed_prune_schedule",
    "processing_harvest_schedule",
    "reference_daily_schedule",
}


def test_the_code_location_holds_exactly_these_definitions() -> None:
    repo = defs.get_repository_def()
    assert {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()} == ASSETS
    assert {
        f"{k.name}@{k.asset_key.to_user_string()}" for k in repo.asset_graph.asset_check_keys
    } == CHECKS
    assert {j.name for j in repo.get_all_jobs() if not j.name.startswith("__")} == JOBS
    assert {s.name for s in repo.sensor_defs} == SENSORS
    assert {s.name for s in repo.schedule_defs} == SCHEDULES


def test_automation_sensors_run_by_default() -> None:
    repo = defs.get_repository_def()
    assert {
        s.name for s in repo.sensor_defs if s.default_status == DefaultSensorStatus.RUNNING
    } == SENSORS


def test_every_table_asset_lives_in_a_domain_schema() -> None:
    schemas = {"reference", "logbook", "processing", "positions", "pois", "alerts"}
    for key in defs.get_repository_def().asset_graph.get_all_asset_keys():
        assert key.path[0] in schemas, key


def test_every_asset_shows_its_kinds_owners_table_and_columns() -> None:
    # What a user reads from the asset graph and catalog: declared, not only reported by runs.
    for spec in defs.resolve_all_asset_specs():
        name = spec.key.to_user_string()
        assert spec.kinds, f"{name} has no kinds"
        assert spec.owners, f"{name} has no owner"
        assert spec.tags.get("domain") == spec.group_name, name
        table = spec.metadata.get("dagster/table_name")
        assert table and table.split(".")[0] == spec.key.path[0], f"{name}: table {table}"
        schema = spec.metadata.get("dagster/column_schema")
        assert schema is not None and schema.columns, f"{name} declares no columns"
        assert all(c.description for c in schema.columns), f"{name}: a column has no description"


def test_each_domain_forms_one_connected_lineage() -> None:
    # Within a domain, every asset is reachable from every other through dependencies.
    specs = list(defs.resolve_all_asset_specs())
    by_group: dict[str, set[str]] = {}
    edges: dict[str, set[str]] = {}
    for spec in specs:
        key = spec.key.to_user_string()
        by_group.setdefault(spec.group_name or "", set()).add(key)
        for dep in spec.deps:
            other = dep.asset_key.to_user_string()
            edges.setdefault(key, set()).add(other)
            edges.setdefault(other, set()).add(key)
    for group, keys in by_group.items():
        if group == "reference":
            continue  # independent source tables by nature; vessels links them by checks
        start = next(iter(keys))
        seen, todo = {start}, [start]
        while todo:
            for other in edges.get(todo.pop(), set()) & keys:
                if other not in seen:
                    seen.add(other)
                    todo.append(other)
        assert seen == keys, f"{group}: {sorted(keys - seen)} not connected to {start}"
