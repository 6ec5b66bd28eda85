"""Bundled POI deliveries (events pages, facilities file) and their helpers (fixtures.py)."""
