"""Definitions of the cross-cutting operations: the publishing job.

Its op needs the resources `warehouse`, `publisher` (resources.publisher.PublisherResource) and
`dry_run` (resources.publisher.DryRunResource), provided by resources.build_resources.
Domains attach `ops.checks.usual_level_check` to their own assets in their own checks.py.
"""

from dagster import Definitions

from platform_assets.ops.jobs import publish_job

defs = Definitions(jobs=[publish_job])
