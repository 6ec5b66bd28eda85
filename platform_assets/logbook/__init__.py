"""Electronic logbook (ERS3 and FLUX FA): parse, keep raw, store reports, resolve at read time.

Pure modules: parse (with ers, flux), inbox (files and archives), load (SQL). Dagster layer:
assets, checks, jobs, definitions (`defs`).
"""
