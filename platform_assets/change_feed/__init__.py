"""The change feed: database changes (triggers -> `ops.change_event` + NOTIFY) read exactly once.

Cross-cutting and free of Dagster: `feed` (cursor and snapshot reads), `lanes` (a consumer's shared
position and batch claims, the one read path), `maintenance` (prune, replay, backlog), `tags`, and
`cli` (`fishnet feed ...`). The sensor factory is sensors/change_feed.py.
"""
