"""`fishnet feed status|replay`: the change feed for operators."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

import psycopg

from platform_assets.change_feed.maintenance import backlog, replay_cursor


def add_feed_parser(sub: argparse._SubParsersAction) -> None:
    """Register `feed` on the `fishnet` command line."""
    feed = sub.add_parser(
        "feed", help="change-feed consumers: status (positions, backlog) or replay from a time"
    )
    commands = feed.add_subparsers(dest="feed_command", required=True)
    commands.add_parser("status", help="consumer positions and their backlog")
    replay = commands.add_parser(
        "replay", help="set a consumer back to re-deliver events since a time"
    )
    replay.add_argument("consumer", help="the consumer (its first lane's sensor name)")
    replay.add_argument("--since", required=True, type=datetime.fromisoformat)
    feed.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run `fishnet feed ...` against the warehouse."""
    from resources.warehouse import resolve_database_urls

    with psycopg.connect(resolve_database_urls().libpq, autocommit=True) as conn:
        if args.feed_command == "status":
            for s in backlog(conn):
                print(
                    f"{s.consumer:<45} xmin={s.watermark:<12} backlog={s.backlog:<8} "
                    f"unconfirmed={s.unconfirmed_batches:<4} last claim {s.last_claim_at} "
                    f"last tick {s.updated_at}"
                )
            return 0
        cursor = replay_cursor(conn, args.consumer, args.since)
        print(cursor.to_json())
        print(
            f"{args.consumer}: its lanes re-deliver from there at their next tick",
            file=sys.stderr,
        )
    return 0
