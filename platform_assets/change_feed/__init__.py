"""The change feed: database changes (triggers -> `ops.change_event` + NOTIFY) read exactly once.

Cross-cutting and free of Dagster: `feed` (cursor and snapshot reads), `lanes` (a consumer's shared
position and batch claims, the one read path), `maintenance` (prune, replay, backlog), `tags`, and
`cli` (`fishnet feed ...`). The sensor factory is sensors/change_feed.py.
"""

from platform_assets.change_feed.feed import (
    CHANNEL,
    DEFAULT_MAX_EVENTS,
    Batch,
    ChangeEvent,
    ChangeFeedError,
    FeedCursor,
    FeedSpec,
    ReadResult,
    read_events,
)
from platform_assets.change_feed.lanes import (
    Claim,
    Lane,
    Unconfirmed,
    claim_batch,
    consumer_position,
    lane_name,
    mark_emitted,
    mark_run_seen,
    unconfirmed_batches,
)
from platform_assets.change_feed.maintenance import (
    ConsumerStatus,
    PruneResult,
    backlog,
    prune,
    replay_cursor,
)

__all__ = [
    "CHANNEL",
    "DEFAULT_MAX_EVENTS",
    "Batch",
    "ChangeEvent",
    "ChangeFeedError",
    "Claim",
    "ConsumerStatus",
    "FeedCursor",
    "FeedSpec",
    "Lane",
    "PruneResult",
    "ReadResult",
    "Unconfirmed",
    "backlog",
    "claim_batch",
    "consumer_position",
    "lane_name",
    "mark_emitted",
    "mark_run_seen",
    "prune",
    "read_events",
    "replay_cursor",
    "unconfirmed_batches",
]
