"""Reference tables: the vessel registry, species, gears, ports, districts, fleet segments, anchorages."""

from dagster import Definitions


def definitions() -> Definitions:
    """This domain's assets, checks, job and schedule, and its two source resources.

    The warehouse and IO manager are shared (see resources/); `source_db` and `reference_files`
    resolve their locations from the environment when a run uses them.
    """
    # Imported here, not at module level: resources.source_db imports this package's pure
    # modules (readers, source_tables), which must load without the Dagster layer.
    from platform_assets.reference.assets import REFERENCE_ASSETS, ReferenceFilesResource
    from platform_assets.reference.checks import VESSEL_LINK_CHECKS
    from platform_assets.reference.jobs import reference_daily_schedule, reference_job
    from resources.source_db import SourceDatabaseResource

    return Definitions(
        assets=REFERENCE_ASSETS,
        asset_checks=VESSEL_LINK_CHECKS,
        jobs=[reference_job],
        schedules=[reference_daily_schedule],
        resources={
            "source_db": SourceDatabaseResource(),
            "reference_files": ReferenceFilesResource(),
        },
    )
