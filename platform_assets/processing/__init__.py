"""Satellite-product processing chain: harvester, orchestrator (planner), launcher, status tracking.

Pure modules: harvest, orchestrate, planner (package), launch, tables. Dagster layer: assets,
checks, jobs, definitions (`defs`); its sensors are sensors/processing.py, its clients (OData
catalogue, Nomad, local launcher) live in resources/.
"""
