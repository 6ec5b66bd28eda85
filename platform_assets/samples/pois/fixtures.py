"""POI sample deliveries for the demo and tests, and synthetic events for the benchmark.

Two bundled deliveries of each source live in resources/data/pois/ (the sources' embedded
default, resources/poi_fixtures.py):

- `delivery_1/`: events pages (14 events over 3 pages, one malformed: its venue latitude is not a
  number) and `facilities.csv` (8 facilities);
- `delivery_2/`: the same, except event EV-1003 changed (its half-marathon is now 22 km) and
  EV-1005 gone; facilities unchanged.

The demo's sources read a copy under the state directory (`<state>/samples/pois/`), seeded with
delivery 1 on first use; `apply_second_delivery()` replaces that copy with delivery 2, so the next
run updates one POI (one history version) and deactivates one.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from resources.poi_fixtures import (  # noqa: F401 - the fixture deliveries, re-exported
    DELIVERIES,
    FILES,
    apply_delivery,
    apply_second_delivery,
    bundled_location,
    demo_dir,
    fixture_location,
)

# --- synthetic events (benchmark, property tests) ----------------------------------------------

# (commune, lat/lon box well inside its sample outline): resources/data/communes_sample.geojson
SAMPLE_AREAS = (
    ("Paris", 48.845, 48.875, 2.30, 2.40),
    ("Lyon", 45.74, 45.78, 4.81, 4.86),
    ("Marseille", 43.24, 43.32, 5.32, 5.44),
    ("Toulouse", 43.57, 43.63, 1.40, 1.47),
    ("Bordeaux", 44.84, 44.89, -0.60, -0.57),
    ("Nantes", 47.21, 47.27, -1.59, -1.53),
    ("Annecy", 45.88, 45.93, 6.10, 6.16),
    ("Chamonix-Mont-Blanc", 45.88, 45.98, 6.86, 6.98),
    ("Ajaccio", 41.92, 41.95, 8.65, 8.75),
    ("Porto-Vecchio", 41.56, 41.64, 9.22, 9.31),
    ("Bastia", 42.67, 42.71, 9.42, 9.445),
    ("Corte", 42.28, 42.34, 9.10, 9.20),
)
_DISCIPLINES = ("Trail", "Course à pied", "VTT", "Cyclisme", "Natation", "Triathlon", "Marche")
_WORDS = ("Grand", "Trail", "Boucles", "Foulées", "Défi", "Ronde", "Course", "Nocturne", "Raid")


def synthetic_event(number: int, rng: random.Random) -> dict[str, Any]:
    """One events-site record in a sample commune (1-3 races)."""
    area = SAMPLE_AREAS[number % len(SAMPLE_AREAS)]
    lat = round(rng.uniform(area[1], area[2]), 6)
    lng = round(rng.uniform(area[3], area[4]), 6)
    day = date(2027, 1, 1) + timedelta(days=rng.randrange(365))
    races = [
        {
            "id": f"R{number}-{k}",
            "discipline": rng.choice(_DISCIPLINES),
            "distance": round(rng.choice((5, 10, 21.1, 42.195, 15, 30)) * (1 + k * 0.5), 3),
            "date": (day + timedelta(days=k)).isoformat(),
            "label": f"{rng.choice(_WORDS)} {k + 1}",
        }
        for k in range(rng.randint(1, 3))
    ]
    return {
        "id": f"EV-{number:07d}",
        "title": f"{rng.choice(_WORDS)} {rng.choice(_WORDS)} de {area[0]} {number}",
        "description": f"Édition {number % 40 + 1}, départ  place centrale.",
        "website": f"HTTPS://Events.Example.org/e/{number}",
        "location": {"name": f"Parc {number}", "lat": lat, "lng": lng, "town": area[0]},
        "races": races,
    }


def synthetic_events(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """`count` deterministic events-site records."""
    rng = random.Random(seed)
    return [synthetic_event(n, rng) for n in range(count)]


def changed_copy(event: dict[str, Any]) -> dict[str, Any]:
    """The same event with its first race 1 km longer (a changed record)."""
    copy = {**event, "races": [dict(r) for r in event["races"]]}
    copy["races"][0]["distance"] = round((copy["races"][0]["distance"] or 0) + 1, 3)
    return copy
