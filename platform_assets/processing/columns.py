"""Column schemas of the processing tables, as the Dagster catalog shows them (migration 0005)."""

from platform_assets.table_metadata import Column

INPUT: list[Column] = [
    ("id", "bigint", "row id"),
    ("product_type", "text", "product type (e.g. S2MSI2A)"),
    ("catalogue_id", "text", "identity in the catalogue; our own products are 'product:<id>'"),
    ("name", "text", "product name"),
    ("path", "text", "where the product can be read"),
    ("measurement_date", "timestamptz", "acquisition time"),
    ("publication_date", "timestamptz", "publication time in the catalogue (harvest window)"),
    ("tile", "text", "tile of the product"),
    ("harvested_at", "timestamptz", "when the harvester registered it"),
    ("source", "text", "catalogue or product (of one of our routines)"),
    ("source_product_id", "bigint", "the product it came from, for source = product"),
]

TASK: list[Column] = [
    ("id", "bigint", "row id"),
    ("input_id", "bigint", "input the task processes"),
    ("upstream_product_id", "bigint", "product of the preceding routine it takes"),
    ("routine", "text", "processing routine"),
    ("virtual_machine_id", "bigint", "VM the planner placed it on (null: unplaced)"),
    ("planned_start", "timestamptz", "planned start"),
    ("planned_end", "timestamptz", "planned end"),
    ("preceding_task_id", "bigint", "task that must be processed first"),
    ("created_at", "timestamptz", "when the orchestrator created it"),
]

VIRTUAL_MACHINE: list[Column] = [
    ("id", "bigint", "row id"),
    ("name", "text", "VM name (Nomad node attribute)"),
    ("flavour", "text", "VM flavour"),
    ("cpu", "double precision", "cores"),
    ("ram_mb", "integer", "memory (MB)"),
    ("storage_gb", "double precision", "disk (GB)"),
    ("state", "text", "planned, starting, running, stopping, stopped, failed"),
    ("created_at", "timestamptz", "when the orchestrator planned it"),
]

DISPATCH: list[Column] = [
    ("id", "bigint", "row id"),
    ("task_id", "bigint", "task"),
    ("attempt", "integer", "attempt number (1, 2, ...)"),
    ("nomad_job_id", "text", "Nomad (or local) job id"),
    ("dispatched_at", "timestamptz", "when the launcher registered the job"),
]

STATUS: list[Column] = [
    ("id", "bigint", "row id"),
    ("task_id", "bigint", "task"),
    ("dispatch_id", "bigint", "attempt it belongs to"),
    ("status", "text", "started, processed, internal_error, external_error, pending, terminated"),
    ("exit_code", "integer", "exit code of the job"),
    ("message", "text", "what the launcher saw"),
    ("at", "timestamptz", "when the status was recorded"),
]

PRODUCT: list[Column] = [
    ("id", "bigint", "row id"),
    ("task_id", "bigint", "task that made it"),
    ("path", "text", "where the product was written"),
    ("product_type", "text", "output product type of the routine"),
    ("created_at", "timestamptz", "when the status tracker recorded it"),
]
