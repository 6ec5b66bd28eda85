"""The publishing job: export a chosen table or view as CSV and/or JSON batches to an endpoint."""

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dagster import Config, MetadataValue, OpExecutionContext, Out, Output, job, op
from pydantic import Field

from platform_assets.ops.dry_run import DryRun
from resources.publisher import DryRunResource, PublisherResource
from resources.warehouse import WarehouseResource

if TYPE_CHECKING:  # publish.py (psycopg) is imported by the op's body, not by the definitions
    from platform_assets.ops.publish import ChunkSummary, PublishSummary

MAX_CHUNKS_IN_METADATA = 200
CHUNK_ROWS = 10_000
"""Rows per JSON batch by default (publish.CHUNK_ROWS; a test holds them equal)."""


class PublishConfig(Config):
    """What to publish, how, and where."""

    relation: str = Field(
        description="table or view, schema-qualified (e.g. logbook.logbook_reports)"
    )
    format: Literal["csv", "json", "both"] = Field(
        default="csv", description="csv: a file; json: batches to the endpoint; both"
    )
    destination: str | None = Field(
        default=None,
        description="an http(s) URL for json, a folder for csv (the other keeps its default); "
        "empty: PUBLISH_URL / PUBLISH_DIR",
    )
    key: list[str] = Field(
        default_factory=list,
        description="columns whose values make the record id; empty: the table's primary key "
        "(required for a view)",
    )
    chunk_rows: int = Field(default=CHUNK_ROWS, description="rows per JSON batch")


def _split_destination(destination: str | None) -> tuple[str | None, str | None]:
    """(url, folder) named by a destination."""
    if not destination:
        return None, None
    if destination.startswith(("http://", "https://")):
        return destination, None
    return None, destination


def _summary_metadata(prefix: str, summary: "PublishSummary") -> dict[str, Any]:
    meta: dict[str, Any] = {
        f"{prefix}/destination": summary.destination,
        f"{prefix}/rows": summary.rows,
        f"{prefix}/bytes": summary.bytes,
        f"{prefix}/seconds": round(summary.seconds, 3),
    }
    if summary.chunks:
        meta[f"{prefix}/chunks"] = len(summary.chunks)
        meta[f"{prefix}/per_chunk"] = MetadataValue.json(
            [c.as_dict() for c in summary.chunks[:MAX_CHUNKS_IN_METADATA]]
        )
    if summary.dry_run and summary.sample:
        meta[f"{prefix}/would_send_sample"] = MetadataValue.json(summary.sample)
    return meta


@op(
    out=Out(dict, description="rows published per format"),
    description="Export a table or view as CSV and/or JSON batches (upsert by record id).",
)
def publish_relation(
    context: OpExecutionContext,
    config: PublishConfig,
    warehouse: WarehouseResource,
    publisher: PublisherResource,
    dry_run: DryRunResource,
) -> Output[dict]:
    """Stream the relation out; under dry run read and build everything, send and write nothing."""
    from platform_assets.ops.publish import export_csv, publish_json

    dry = DryRun.from_context(context, dry_run)
    url_override, dir_override = _split_destination(config.destination)
    key = config.key or None
    metadata: dict[str, Any] = dry.metadata() | {"relation": config.relation}
    published: dict[str, int] = {}
    if dry:
        context.log.info(f"dry run ({dry.origin}): nothing will be sent or written")

    if config.format in ("csv", "both"):
        directory = publisher.csv_dir(dir_override)
        with warehouse.connect() as conn:
            summary = export_csv(
                conn, config.relation, Path(directory), key=key, dry_run=dry.enabled
            )
        verb = "would write" if dry else "wrote"
        context.log.info(
            f"{verb} {summary.rows} rows of {config.relation} to {summary.destination}"
        )
        metadata |= _summary_metadata("csv", summary)
        published["csv"] = summary.rows

    if config.format in ("json", "both"):
        endpoint = publisher.endpoint(url_override)

        def log_chunk(chunk: "ChunkSummary") -> None:
            if dry:
                context.log.info(f"chunk {chunk.number}: would send {chunk.rows} rows")
            else:
                context.log.info(
                    f"chunk {chunk.number}: {chunk.rows} rows sent, {chunk.created} created, "
                    f"{chunk.updated} updated, {chunk.errors} errors, {chunk.attempts} attempt(s)"
                )

        with warehouse.connect() as conn:
            if dry:
                summary = publish_json(
                    conn,
                    config.relation,
                    None,
                    key=key,
                    chunk_rows=config.chunk_rows,
                    destination=endpoint or "",
                    on_chunk=log_chunk,
                )
            else:
                with publisher.sender(url_override) as sender:
                    summary = publish_json(
                        conn,
                        config.relation,
                        sender,
                        key=key,
                        chunk_rows=config.chunk_rows,
                        destination=sender.url,
                        on_chunk=log_chunk,
                    )
            conn.rollback()  # publishing reads only
        rate = summary.rows / summary.seconds if summary.seconds else 0.0
        context.log.info(
            f"{'would send' if dry else 'sent'} {summary.rows} rows of {config.relation} in "
            f"{len(summary.chunks)} chunk(s) ({rate:,.0f} rows/s)"
        )
        metadata |= _summary_metadata("json", summary)
        published["json"] = summary.rows
    return Output(published, metadata=metadata)


@job(
    description="Publish a table or view: CSV to PUBLISH_DIR and/or JSON batches to PUBLISH_URL "
    "(run config: relation, format, destination, key). Tag fishnet/dry_run=true to only count."
)
def publish_job() -> None:
    publish_relation()
