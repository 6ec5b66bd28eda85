"""Vessel positions: NAF records -> positions -> enriched positions -> last positions.

Pure modules (no Dagster, no database): `naf` (parser), `enrichment` (per-track enrichment with a
carried state, so that incremental equals full), `last_positions`, `columns` (shared column
names and dtypes), `geodesy`. See docs/positions.md.
"""
