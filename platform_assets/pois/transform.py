"""The generic transform: run every `transform_*` method of every model instance of each record.

Discovery is by name (`transform_methods`): adding a step is writing a method, there is no list to
maintain. Steps of one class run in definition order (base classes first); within a record,
children run before their parents (post-order), so a parent's step sees finished children.

A step that raises marks its record (`RegisteredPoi.errors`, "Class.method: message") and the
other steps and records go on; the caller quarantines marked records. A geocoder outage is not
the records' fault: `GeocoderError` propagates and fails the batch, to be retried.

Batch hooks: `prepare_*` classmethods, discovered the same way (`prepare_methods`), run once per
batch with every instance of their class before the steps (the geocoder's one vectorised query).

Parallelism: sources are separate assets, so Dagster's multiprocess executor transforms different
sources in parallel. Inside a source, `transform_source(workers=N)` can spread chunks over a
process pool (each worker rebuilds its geocoder from a picklable factory, and sends its records
back as JSON, not as pickled model graphs), but it is off by default: on this shared 2-core
machine, 100,000 records took 11-19 s with 2 workers against 5.5-9 s in one process
(benchmarks/pois.py measures the one-process path), the other core being busy elsewhere.
"""

from __future__ import annotations

import functools
import multiprocessing
import typing
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, TypeAdapter

from platform_assets.ops.bulk import gc_paused
from platform_assets.pois.models import RegisteredPoi, TransformContext
from resources.geocoder_client import Geocoder, GeocoderError

TransformStep = Callable[[Any, TransformContext], None]
BatchHook = Callable[[list[Any], TransformContext], None]


def _named(cls: type, prefix: str, accept: Callable[[Any], bool]) -> dict[str, Any]:
    """Attributes of a class and its bases named `prefix*` that `accept` takes, in definition
    order (an override keeps its base's position)."""
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if name.startswith(prefix) and accept(value):
                found[name] = value
    return found


@functools.cache
def transform_methods(cls: type) -> tuple[tuple[str, TransformStep], ...]:
    """Every `transform_*` method of a class and its bases, in definition order."""
    return tuple(_named(cls, "transform_", callable).items())


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


@functools.cache
def _child_fields(cls: type[BaseModel]) -> tuple[tuple[str, bool], ...]:
    """(field, is a list) of the fields of a model class that hold models, from annotations."""
    found = []
    for name, info in cls.model_fields.items():
        annotation = info.annotation
        if _is_model(annotation):
            found.append((name, False))
        elif typing.get_origin(annotation) is list and any(
            _is_model(arg) for arg in typing.get_args(annotation)
        ):
            found.append((name, True))
    return tuple(found)


def iter_models(model: BaseModel) -> list[BaseModel]:
    """The model instances of a record, children before parents."""
    found: list[BaseModel] = []
    _collect(model, found)
    return found


def _collect(model: BaseModel, found: list[BaseModel]) -> None:
    values = model.__dict__
    for name, is_list in _child_fields(type(model)):
        value = values[name]
        if is_list:
            for item in value:
                _collect(item, found)
        elif value is not None:
            _collect(value, found)
    found.append(model)


@functools.cache
def prepare_methods(cls: type) -> tuple[tuple[str, BatchHook], ...]:
    """Every `prepare_*` classmethod of a class and its bases (batch hooks), in definition order."""
    hooks = _named(cls, "prepare_", lambda value: isinstance(value, classmethod))
    return tuple((name, getattr(cls, name)) for name in hooks)  # bound to `cls`


def transform_record(record: RegisteredPoi, context: TransformContext) -> RegisteredPoi:
    """Run every step on every instance of one record; failures are noted in `record.errors`."""
    return _run_steps(record, iter_models(record), context)


def _run_steps(
    record: RegisteredPoi, models: list[BaseModel], context: TransformContext
) -> RegisteredPoi:
    for model in models:
        for name, step in transform_methods(type(model)):
            try:
                step(model, context)
            except GeocoderError:
                raise
            except Exception as exc:  # noqa: BLE001 - any step failure marks only this record
                record.errors.append(f"{type(model).__name__}.{name}: {exc}")
    return record


def _prepare(per_record: Sequence[list[BaseModel]], context: TransformContext) -> None:
    """Run the batch hooks: each class's `prepare_*` once, with all its instances in the batch."""
    by_class: dict[type, list[BaseModel]] = {}
    for models in per_record:
        for model in models:
            by_class.setdefault(type(model), []).append(model)
    for cls, instances in by_class.items():
        for _, hook in prepare_methods(cls):
            hook(instances, context)


def transform_records(
    records: Sequence[RegisteredPoi], context: TransformContext
) -> list[RegisteredPoi]:
    """The generic transform of a batch: batch hooks first (geocoding in one call), then steps."""
    per_record = [iter_models(record) for record in records]
    _prepare(per_record, context)
    return [
        _run_steps(record, models, context)
        for record, models in zip(records, per_record, strict=True)
    ]


# --- per source: specific + generic ------------------------------------------------------------


@dataclass(frozen=True)
class Rejected:
    """A record that failed a transform: raw record, id if known, stage and error."""

    record: Mapping[str, Any]
    original_id: str | None
    stage: str  # 'source' (specific transform) or 'generic' (a transform_* step)
    error: str


@dataclass
class TransformOutcome:
    """Records ready to load, records rejected, and every original id the extract held."""

    records: list[RegisteredPoi] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    seen_ids: list[str] = field(default_factory=list)

    def extend(self, other: TransformOutcome) -> None:
        """Append another chunk's outcome."""
        self.records += other.records
        self.rejected += other.rejected
        self.seen_ids += other.seen_ids

    @property
    def failure_share(self) -> float:
        """Rejected records over all records (0 for an empty extract)."""
        total = len(self.records) + len(self.rejected)
        return len(self.rejected) / total if total else 0.0


SpecificTransform = Callable[[Mapping[str, Any]], RegisteredPoi]
IdOf = Callable[[Mapping[str, Any]], str | None]


def transform_chunk(
    raw: Sequence[Mapping[str, Any]],
    specific: SpecificTransform,
    original_id: IdOf,
    geocoder: Geocoder | Callable[[], Geocoder] | None,
) -> TransformOutcome:
    """Specific then generic transform of raw records; each failure is kept with its stage."""
    with gc_paused():
        return _transform_chunk(raw, specific, original_id, geocoder)


def _transform_chunk(
    raw: Sequence[Mapping[str, Any]],
    specific: SpecificTransform,
    original_id: IdOf,
    geocoder: Geocoder | Callable[[], Geocoder] | None,
) -> TransformOutcome:
    if callable(geocoder) and not hasattr(geocoder, "reverse_many"):
        geocoder = geocoder()  # a factory: we are in a worker process
    context = TransformContext(geocoder=geocoder)  # type: ignore[arg-type]
    outcome = TransformOutcome()
    parsed: list[tuple[Mapping[str, Any], RegisteredPoi]] = []
    for item in raw:
        key = original_id(item)
        if key is not None:
            outcome.seen_ids.append(key)
        try:
            parsed.append((item, specific(item)))
        except Exception as exc:  # noqa: BLE001 - the source transform's failure is the record's
            outcome.rejected.append(Rejected(item, key, "source", str(exc)))
    transform_records([record for _, record in parsed], context)  # in place
    for item, record in parsed:
        if record.errors:
            error = "; ".join(record.errors)
            outcome.rejected.append(Rejected(item, record.original_id, "generic", error))
        else:
            outcome.records.append(record)
    return outcome


def _transform_chunk_as_json(
    raw: Sequence[Mapping[str, Any]],
    specific: SpecificTransform,
    original_id: IdOf,
    geocoder: Callable[[], Geocoder],
) -> tuple[list[bytes], list[Rejected], list[str]]:
    """`transform_chunk` in a worker: records go back as their JSON (see `transform_source`)."""
    outcome = transform_chunk(raw, specific, original_id, geocoder)
    return (
        [r.model_dump_json().encode() for r in outcome.records],
        outcome.rejected,
        outcome.seen_ids,
    )


def transform_source(
    raw: Sequence[Mapping[str, Any]],
    specific: SpecificTransform,
    original_id: IdOf,
    geocoder_factory: Callable[[], Geocoder],
    *,
    workers: int = 1,
    chunk_size: int = 5_000,
) -> TransformOutcome:
    """Transform a whole extract; `workers` > 1 spreads chunks over a process pool.

    Workers send records back as JSON bytes, rebuilt here by pydantic's core in one call per
    chunk while the workers go on with the next chunks (pickled model graphs cost far more).
    """
    outcome = TransformOutcome()
    if workers <= 1:
        outcome.extend(transform_chunk(raw, specific, original_id, geocoder_factory()))
        return outcome
    chunks = [list(raw[i : i + chunk_size]) for i in range(0, len(raw), chunk_size)]
    # forkserver, not fork: a Dagster run process has threads, and forking those can deadlock
    context = multiprocessing.get_context("forkserver")
    with gc_paused(), ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [
            pool.submit(_transform_chunk_as_json, chunk, specific, original_id, geocoder_factory)
            for chunk in chunks
        ]
        for future in futures:  # in order: the outcome keeps the extract's order
            texts, rejected, seen_ids = future.result()
            records = _records_adapter().validate_json(b"[" + b",".join(texts) + b"]")
            outcome.extend(TransformOutcome(records, rejected, seen_ids))
    return outcome


@functools.cache
def _records_adapter() -> TypeAdapter[list[RegisteredPoi]]:
    return TypeAdapter(list[RegisteredPoi])
