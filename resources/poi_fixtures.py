"""The POI sources' embedded default: bundled deliveries, copied under the state directory.

Without a configured location, each source reads `<state>/samples/pois/<its file>`, seeded with
delivery 1 on first use; the demo replaces it with delivery 2 (one event changed, one removed) to
show change detection. Like the catalogue's fixture pages, this is the local stand-in of a real
source, so it lives with the resources.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from resources.warehouse import state_dir

BUNDLED = Path(__file__).resolve().parent / "data" / "pois"
DELIVERIES = {1: BUNDLED / "delivery_1", 2: BUNDLED / "delivery_2"}
FILES = {"events": "events", "facilities": "facilities.csv"}
"""Each source's fixture, relative to a delivery folder (events: a folder of pages)."""


def bundled_location(source: str, delivery: int = 1) -> Path:
    """A source's fixture inside a bundled delivery (for tests: read in place)."""
    return DELIVERIES[delivery] / FILES[source]


def demo_dir(state: Path | None = None) -> Path:
    """Where the demo's current delivery is copied."""
    return (state or state_dir()) / "samples" / "pois"


def apply_delivery(delivery: int, state: Path | None = None) -> Path:
    """Replace the demo's current delivery with a bundled one; returns the demo folder."""
    target = demo_dir(state)
    target.mkdir(parents=True, exist_ok=True)
    for name in FILES.values():
        destination = target / name
        if destination.is_dir():
            shutil.rmtree(destination)
        source = DELIVERIES[delivery] / name
        if source.is_dir():
            shutil.copytree(source, destination)
        else:
            shutil.copyfile(source, destination)
    (target / "DELIVERY").write_text(f"{delivery}\n")
    return target


def seed(state: Path | None = None) -> Path:
    """The first delivery, unless a delivery is already in place (the demo's seeder)."""
    target = demo_dir(state)
    if not (target / "DELIVERY").exists():
        apply_delivery(1, state)
    return target


def apply_second_delivery(state: Path | None = None) -> Path:
    """One event changed and one removed: what the demo's second run loads."""
    return apply_delivery(2, state)


def fixture_location(source: str, state: Path | None = None) -> Path:
    """A source's current demo fixture (seeding delivery 1 on first use)."""
    return seed(state) / FILES[source]
