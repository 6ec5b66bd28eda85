"""What every file-inbox sensor does with a listing: one run request per file not yet ingested."""

from collections.abc import Callable, Sequence
from pathlib import Path

from dagster import RunConfig, RunRequest, SkipReason

from platform_assets.ops.catalog import ingested_hashes
from platform_assets.ops.inbox_files import InboxFile
from resources.warehouse import WarehouseResource


def new_file_requests(
    inbox: Path,
    files: Sequence[InboxFile],
    warehouse: WarehouseResource,
    domain: str,
    run_config: Callable[[InboxFile], RunConfig],
) -> SkipReason | list[RunRequest]:
    """Files already in the ingestion catalog are skipped; run keys stop a file running twice."""
    if not files:
        return SkipReason(f"no file in {inbox}")
    with warehouse.connect() as conn:
        done = ingested_hashes(conn, domain, [f.sha256 for f in files])
    new = [f for f in files if f.sha256 not in done]
    if not new:
        return SkipReason(f"{len(files)} file(s) in {inbox}, all ingested")
    return [
        RunRequest(run_key=f.run_key, run_config=run_config(f), tags={"fishnet/file": f.path.name})
        for f in new
    ]
