"""Checks of the processing chain: no task failed for good, no input left without a task."""

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from platform_assets.processing.assets import INPUT_ASSET_KEY, TASK_KEY
from resources.warehouse import WarehouseResource

SAMPLE = 20


@asset_check(
    asset=TASK_KEY,
    description="No task whose last status is an error with no attempt left (they need a person).",
)
def no_task_failed_for_good(warehouse: WarehouseResource) -> AssetCheckResult:
    """Tasks whose latest status is an error and that are not ready for another attempt."""
    with warehouse.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT s.task_id, s.status, left(coalesce(s.message, ''), 200) "
            "FROM processing.task_last_status s "
            "WHERE s.status IN ('internal_error', 'external_error', 'terminated') "
            "AND NOT EXISTS (SELECT 1 FROM processing.ready_task r WHERE r.task_id = s.task_id) "
            "ORDER BY s.task_id"
        ).all()
    return AssetCheckResult(
        passed=not rows,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "failed_tasks": len(rows),
            "sample": MetadataValue.json(
                [{"task_id": t, "status": st, "message": m} for t, st, m in rows[:SAMPLE]]
            ),
        },
    )


@asset_check(
    asset=INPUT_ASSET_KEY,
    description="Every input some routine takes has a task (the orchestrator kept up).",
)
def every_input_planned(warehouse: WarehouseResource) -> AssetCheckResult:
    """Inputs of a product type some routine takes, with no task for that routine yet."""
    with warehouse.engine.connect() as conn:
        count = conn.exec_driver_sql(
            "SELECT count(*) FROM processing.input i "
            "JOIN processing.processing_routine r ON r.input_product_type = i.product_type "
            "WHERE NOT EXISTS (SELECT 1 FROM processing.processing_task t "
            "WHERE t.input_id = i.id AND t.routine = r.name)"
        ).scalar_one()
    return AssetCheckResult(
        passed=count == 0, severity=AssetCheckSeverity.WARN, metadata={"unplanned_inputs": count}
    )


PROCESSING_CHECKS = [no_task_failed_for_good, every_input_planned]
