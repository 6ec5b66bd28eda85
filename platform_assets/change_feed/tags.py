"""Run tags of change-feed runs: which consumer and batch started a run (set by the sensors)."""

BATCH_TAG = "fishnet/change_batch"
CONSUMER_TAG = "fishnet/change_consumer"
EVENTS_TAG = "fishnet/change_events"
RUN_KEY_TAG = "fishnet/change_run_key"
"""The batch's run key, in a tag of our own: looking runs up by it needs no Dagster internals."""
