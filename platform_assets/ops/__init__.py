"""Cross-cutting operations every domain calls: the ingestion catalog (catalog.py), the
incremental compare loop's config and windows (incremental.py), run metrics and their usual-level
check (metrics.py, checks.py), publishing (publish.py, jobs.py) and dry run (dry_run.py)."""
