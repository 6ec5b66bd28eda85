"""Cross-cutting operations: the ingestion catalog (and later run metrics, publishing)."""
