"""Bundled sample data and seeders for the demo (no Dagster here): one module or folder per domain."""
