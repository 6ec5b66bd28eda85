"""From what an alert family found now to the rows of `alerts.pending_alerts`.

Every family produces `ProducedAlert`s for a `Scope` (the alerts it is authoritative for: its type,
the specifications it evaluated, the episodes it looked at). `reconcile` turns them, the stored
alerts of that scope and the operators' silences into a `Plan`:

- an alert's id is a UUID5 of (type, specification, vessel, episode), so running again never
  duplicates; an alert still firing keeps the id of its open episode (a vessel that stays in a zone
  over midnight keeps yesterday's alert);
- an open pending alert that is no longer produced is closed (reason `cleared`), never deleted;
  a validated one only records when its condition cleared;
- a silenced alert (vessel + alert type [+ specification], until a date) is not produced, and an
  open pending alert that becomes silenced is closed (reason `silenced`);
- a closed alert produced again with the same id is reopened; a validated one stays validated.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

POSITION_ALERT = "POSITION_ALERT"
MISSING_FAR = "MISSING_FAR"
MISSING_DEP = "MISSING_DEP"
SILENT_BEACON = "SILENT_BEACON"
ALERT_TYPES = (POSITION_ALERT, MISSING_FAR, MISSING_DEP, SILENT_BEACON)

PENDING, VALIDATED, CLOSED = "pending", "validated", "closed"
MAX_EVIDENCE_IDS = 200
"""Evidence lists are capped (the count is kept) so one alert row stays small."""

_NAMESPACE = uuid.UUID("6f1f0e4e-2a8e-5d0c-9a51-a1e27e5a1e27")


def vessel_key(cfr: Any, ircs: Any, external: Any) -> str | None:
    """The vessel an alert is about: its CFR, else its call sign, else its external marking
    (prefixed so the three cannot collide); None without any identifier."""
    for prefix, value in (("CFR", cfr), ("IRCS", ircs), ("EXT", external)):
        if isinstance(value, str) and value.strip():
            return f"{prefix}:{value.strip()}"
    return None


def alert_id(alert_type: str, specification_id: int | None, key: str, episode: str) -> str:
    """The stable id of an alert: the same inputs always give the same id."""
    spec = "" if specification_id is None else str(specification_id)
    return str(uuid.uuid5(_NAMESPACE, f"{alert_type}|{spec}|{key}|{episode}"))


@dataclass(frozen=True)
class ProducedAlert:
    """One alert as a family computes it now, with what made it fire."""

    alert_type: str
    vessel_key: str
    episode_start: datetime
    """Start of the episode (the day, the departure, the silence); part of the id."""
    triggered_at: datetime
    """Time of the latest evidence."""
    title: str
    specification_id: int | None = None
    internal_reference_number: str | None = None
    external_reference_number: str | None = None
    ircs: str | None = None
    vessel_name: str | None = None
    flag_state: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    """position_ids / report_ids / zones / counts: why the alert fired."""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> tuple[str, int | None, str]:
        """What an episode is about: (type, specification, vessel)."""
        return (self.alert_type, self.specification_id, self.vessel_key)

    @property
    def episode_id(self) -> str:
        """The id this alert gets when it starts a new episode."""
        return alert_id(
            self.alert_type,
            self.specification_id,
            self.vessel_key,
            self.episode_start.isoformat(),
        )


@dataclass(frozen=True)
class Scope:
    """The stored alerts a family run is authoritative for."""

    alert_type: str
    specification_ids: frozenset[int] | None = None
    """Position alerts: the specifications evaluated (None: any)."""
    episode_from: datetime | None = None
    episode_to: datetime | None = None
    """Only episodes starting in [from, to] (None: unbounded)."""

    def contains(self, alert: StoredAlert) -> bool:
        """True when the run decides about this stored alert."""
        if alert.alert_type != self.alert_type:
            return False
        specs = self.specification_ids
        if specs is not None and alert.specification_id not in specs:
            return False
        if self.episode_from is not None and alert.episode_start < self.episode_from:
            return False
        return self.episode_to is None or alert.episode_start <= self.episode_to


@dataclass(frozen=True)
class StoredAlert:
    """The part of a stored alert that reconciliation needs."""

    id: str
    alert_type: str
    specification_id: int | None
    vessel_key: str
    episode_start: datetime
    status: str
    cleared_at: datetime | None = None

    @property
    def subject(self) -> tuple[str, int | None, str]:
        """(type, specification, vessel)."""
        return (self.alert_type, self.specification_id, self.vessel_key)

    @property
    def is_open_episode(self) -> bool:
        """Its condition has not cleared (pending, or validated while still firing)."""
        return self.status != CLOSED and self.cleared_at is None


@dataclass(frozen=True)
class Silence:
    """An operator's silencing: no alert of this type (and specification) for this vessel until
    `silenced_until`."""

    vessel_key: str
    alert_type: str
    silenced_until: datetime
    specification_id: int | None = None

    def covers(
        self, alert_type: str, specification_id: int | None, key: str, now: datetime
    ) -> bool:
        """True when an alert with these fields is silenced at `now`."""
        return (
            self.vessel_key == key
            and self.alert_type == alert_type
            and (self.specification_id is None or self.specification_id == specification_id)
            and now < self.silenced_until
        )


@dataclass
class Plan:
    """What to write: new alerts, refreshed ones, reopened ones, closings, cleared validations."""

    insert: list[tuple[str, ProducedAlert]] = field(default_factory=list)
    refresh: list[tuple[str, ProducedAlert]] = field(default_factory=list)
    reopen: list[tuple[str, ProducedAlert]] = field(default_factory=list)
    close: list[tuple[str, str]] = field(default_factory=list)
    """(id, reason) with reason `cleared` or `silenced`."""
    clear_validated: list[str] = field(default_factory=list)
    silenced: list[ProducedAlert] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Sizes, for logs and metadata."""
        return {
            "opened": len(self.insert),
            "refreshed": len(self.refresh),
            "reopened": len(self.reopen),
            "closed": len(self.close),
            "validated_cleared": len(self.clear_validated),
            "silenced": len(self.silenced),
        }


def is_silenced(
    alert_type: str,
    specification_id: int | None,
    key: str,
    silences: Iterable[Silence],
    now: datetime,
) -> bool:
    """True when one of the silences covers this alert at `now`."""
    return any(s.covers(alert_type, specification_id, key, now) for s in silences)


def reconcile(
    produced: Sequence[ProducedAlert],
    stored: Sequence[StoredAlert],
    silences: Sequence[Silence],
    scope: Scope,
    now: datetime,
) -> Plan:
    """The plan that makes the stored alerts of `scope` agree with `produced`.

    `stored` must hold the open alerts of the scope and any alert whose id an episode would take
    (the store fetches both); extra rows are harmless.
    """
    plan = Plan()
    by_id = {a.id: a for a in stored}
    open_by_subject: dict[tuple[str, int | None, str], StoredAlert] = {}
    for row in stored:
        if row.is_open_episode:
            current = open_by_subject.get(row.subject)
            if current is None or row.episode_start < current.episode_start:
                open_by_subject[row.subject] = row
    kept: set[str] = set()
    order = sorted(
        produced,
        key=lambda a: (a.alert_type, a.specification_id or -1, a.vessel_key, a.episode_start),
    )
    for alert in order:
        if is_silenced(alert.alert_type, alert.specification_id, alert.vessel_key, silences, now):
            plan.silenced.append(alert)
            continue
        running = open_by_subject.get(alert.subject)
        if running is not None and alert.alert_type == POSITION_ALERT:
            # a vessel still matching a specification stays in one episode (one alert), even
            # when the window has moved past the day the episode started
            if running.id not in kept:
                kept.add(running.id)
                plan.refresh.append((running.id, alert))
            continue
        new_id = alert.episode_id
        if new_id in kept:
            continue
        kept.add(new_id)
        existing = by_id.get(new_id)
        if existing is None:
            plan.insert.append((new_id, alert))
        elif existing.status == CLOSED:
            plan.reopen.append((new_id, alert))
        else:
            plan.refresh.append((new_id, alert))
    for row in stored:
        if row.id in kept or not row.is_open_episode or not scope.contains(row):
            continue
        silenced = is_silenced(row.alert_type, row.specification_id, row.vessel_key, silences, now)
        if row.status == PENDING:
            plan.close.append((row.id, "silenced" if silenced else "cleared"))
        else:
            plan.clear_validated.append(row.id)
    return plan


def capped(ids: Iterable[Any], limit: int = MAX_EVIDENCE_IDS) -> list[Any]:
    """At most `limit` ids (the latest ones when the input is in time order)."""
    values = list(ids)
    return values[-limit:]
