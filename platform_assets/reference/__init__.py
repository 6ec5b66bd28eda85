"""Reference tables: the vessel registry, species, gears, ports, districts, fleet segments, anchorages.

Pure modules: readers (CSV/YAML sources), vessels (registry rows -> table), anchorages (H3).
Dagster layer: assets, checks, jobs, definitions (`defs`).
"""
