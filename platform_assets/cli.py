"""`fishnet`: the platform's command line (database, migrations, the demo run, the UI)."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import psycopg

from resources.warehouse import (
    PROJECT_ROOT,
    DatabaseUrls,
    dagster_environment,
    embedded_data_dir,
    embedded_server_uri,
    resolve_database_urls,
    start_embedded,
    state_dir,
    stop_embedded,
)


def _cmd_db(args: argparse.Namespace) -> int:
    external = os.environ.get("DATABASE_URL")
    if args.action == "start":
        # DATABASE_URL exported by `fishnet env` may be the embedded server itself: start that one
        embedded = embedded_data_dir(external) if external else None
        if external and embedded is None:
            print(f"DATABASE_URL is set; nothing to start ({DatabaseUrls.parse(external).url!r})")
            return 0
        pgdata = embedded or state_dir() / "pgdata"
        urls = start_embedded(pgdata.parent) if embedded else resolve_database_urls()
        print(f"embedded PostgreSQL running in {pgdata}: {urls.libpq}")
    elif args.action == "stop":
        stopped = stop_embedded()
        print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")
    elif args.action == "status":
        uri = embedded_server_uri()
        if external:
            print(f"using DATABASE_URL: {DatabaseUrls.parse(external).url!r}")
        print(f"embedded PostgreSQL ({state_dir() / 'pgdata'}): {'running' if uri else 'stopped'}")
        return 0 if (uri or external) else 3
    elif args.action == "url":
        print(resolve_database_urls().libpq)
    return 0


def _cmd_env(args: argparse.Namespace) -> int:
    for name, value in dagster_environment(resolve_database_urls()).items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    from migrations import current_revision, upgrade

    urls = resolve_database_urls()
    upgrade(urls, args.revision)
    print(f"warehouse schema at revision {current_revision(urls)}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from platform_assets.demo.run import run_demo

    return run_demo()


def _cmd_dev(args: argparse.Namespace) -> int:
    from migrations import upgrade

    urls = resolve_database_urls()
    upgrade(urls)
    env = {**os.environ, **dagster_environment(urls)}
    # Change-feed sensor lanes each hold a code-server thread while they wait on LISTEN; the
    # default (CPUs + 4) would make them queue behind each other.
    env.setdefault("DAGSTER_GRPC_MAX_WORKERS", "32")
    env.setdefault("DAGSTER_CODE_SERVER_MAX_WORKERS", "32")
    # the dagster of this environment, whether or not it is activated
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), *args.dagster_args]
    print(f"DAGSTER_HOME={env['DAGSTER_HOME']}; starting: {' '.join(command)}", flush=True)
    os.chdir(PROJECT_ROOT)
    # Started from a script, dagster dev would otherwise ignore Ctrl-C (see PITFALLS).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.execvpe(command[0], command, env)
    return 0  # not reached


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to render --help in tests)."""
    parser = argparse.ArgumentParser(
        prog="fishnet",
        description="Fisheries, points of interest and satellite processing on Dagster + PostgreSQL.",
        epilog="DATABASE_URL selects a PostgreSQL server; unset, an embedded one is started "
        "under FISHNET_STATE_DIR (default ./.state).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db = sub.add_parser("db", help="start, stop or inspect the embedded PostgreSQL")
    db.add_argument(
        "action",
        choices=["start", "stop", "status", "url"],
        help="start: start it if needed; stop: stop it; status: running or not; "
        "url: print the warehouse URL (starting the server if needed)",
    )
    db.set_defaults(func=_cmd_db)

    env = sub.add_parser(
        "env",
        help='print shell exports for Dagster commands (eval "$(fishnet env)")',
        description="Print DATABASE_URL, DAGSTER_PG_URL and DAGSTER_HOME as shell exports, so that "
        "`dagster job execute -m platform_assets.definitions -j <job>` uses the same PostgreSQL.",
    )
    env.set_defaults(func=_cmd_env)

    migrate = sub.add_parser("migrate", help="apply the warehouse migrations (idempotent)")
    migrate.add_argument("--revision", default="head", help="target revision (default: head)")
    migrate.set_defaults(func=_cmd_migrate)

    demo = sub.add_parser(
        "demo",
        help="the main job: migrate, materialise every asset on sample data, tick sensors, summarise",
    )
    demo.set_defaults(func=_cmd_demo)

    dev = sub.add_parser(
        "dev",
        help="start the database if needed and run `dagster dev` (UI + daemon) on it",
        description="Arguments after `--` go to `dagster dev` (e.g. fishnet dev -- -p 3001).",
    )
    dev.add_argument("dagster_args", nargs=argparse.REMAINDER, help="passed to dagster dev")
    dev.set_defaults(func=_cmd_dev)

    from platform_assets.change_feed.cli import add_feed_parser

    add_feed_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `fishnet` console script."""
    args = build_parser().parse_args(argv)
    if getattr(args, "dagster_args", None) and args.dagster_args[0] == "--":
        args.dagster_args = args.dagster_args[1:]
    try:
        return int(args.func(args) or 0)
    except Exception as exc:
        explained = explain_database_loss(exc)
        if explained is None:
            raise
        print(explained, file=sys.stderr)
        return 2


def explain_database_loss(exc: BaseException) -> str | None:
    """A plain explanation when the server went away (instead of a retry traceback), else None."""
    from dagster_postgres.utils import DagsterPostgresException

    if not isinstance(exc, DagsterPostgresException | psycopg.OperationalError):
        return None
    external = os.environ.get("DATABASE_URL")
    embedded = embedded_data_dir(external) if external else state_dir() / "pgdata"
    if embedded is None:
        return (
            f"fishnet: the PostgreSQL server of DATABASE_URL stopped answering ({exc}). "
            "Runs and data committed so far are kept; start the server again and re-run."
        )
    if embedded_server_uri(embedded.parent) is None:
        return (
            f"fishnet: the embedded PostgreSQL ({embedded}) is not running any more "
            f"({type(exc).__name__}). Committed runs and data are kept: `fishnet db start` starts "
            "it again, then re-run the command."
        )
    return f"fishnet: the embedded PostgreSQL stopped answering ({exc}); try `fishnet db status`."


if __name__ == "__main__":
    sys.exit(main())
