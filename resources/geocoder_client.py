"""Reverse geocoding clients: from coordinates to a commune (INSEE code, name) and, online, an address.

Two implementations behind one small interface (`Geocoder.reverse_many`):

- `CommuneGeocoder`, the offline default: finds the commune polygon containing each point with a
  shapely 2 STRtree (one vectorised query per batch). It ships with a small sample file
  (`resources/data/communes_sample.geojson`: a handful of simplified communes, Corsica's 2A/2B
  included) and takes the national file (e.g. the simplified ADMIN EXPRESS communes, or
  france-geojson's `communes.geojson`) through GEOCODER_COMMUNES_FILE.
- `BanGeocoder`, the production option: the national address base's reverse-geocoding API
  (`/reverse/csv/`, one POST per batch of points), with retries on 429/5xx/transport errors and a
  cache of rounded coordinates, so a second run (or a POI seen twice) costs no request.

Pure client code (no Dagster): `resources/geocoder.py` wraps it as a resource. Nothing here
reads the environment or a file at import time, and numpy, shapely and httpx are imported by the
client that uses them, when it is built: importing the definitions (which name `Place`,
`GeocoderError` and the `Geocoder` interface) stays light (issue #20).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

SAMPLE_COMMUNES_FILE = Path(__file__).resolve().parent / "data" / "communes_sample.geojson"

Point = tuple[float, float]
"""(latitude, longitude) in WGS 84."""


@dataclass(frozen=True)
class Place:
    """What reverse geocoding found at a point."""

    insee_code: str
    city: str
    postcode: str | None = None
    street: str | None = None
    label: str | None = None


class GeocoderError(RuntimeError):
    """The geocoder could not answer (after retries), naming the batch or file at fault."""


class Geocoder(Protocol):
    """Reverse geocoding of many points at once (one result per point, None where nothing)."""

    def reverse_many(self, points: Sequence[Point]) -> list[Place | None]: ...


# --- offline: commune polygons ---------------------------------------------------------------

_CODE_KEYS = ("code", "INSEE_COM", "insee", "code_insee", "codgeo")
_NAME_KEYS = ("nom", "NOM", "NOM_COM", "name", "libelle")
_POSTCODE_KEYS = ("codePostal", "codesPostaux", "postcode", "code_postal")


def _first(properties: dict[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        value = properties.get(key)
        if value not in (None, "", []):
            return value
    return None


class CommuneGeocoder:
    """Point-in-commune lookup over a GeoJSON FeatureCollection of commune polygons."""

    def __init__(self, path: Path) -> None:
        import numpy as np
        import shapely

        self.path = path
        try:
            collection = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise GeocoderError(f"cannot read the communes file {path}: {exc}") from exc
        geometries = []
        places: list[Place] = []
        for number, feature in enumerate(collection.get("features", [])):
            properties = feature.get("properties") or {}
            code = _first(properties, _CODE_KEYS)
            name = _first(properties, _NAME_KEYS)
            if code is None or name is None or not feature.get("geometry"):
                raise GeocoderError(
                    f"{path}: feature {number} lacks a commune code, a name or a geometry"
                )
            postcode = _first(properties, _POSTCODE_KEYS)
            if isinstance(postcode, list):
                postcode = postcode[0]
            geometries.append(shapely.from_geojson(json.dumps(feature["geometry"])))
            places.append(
                Place(insee_code=str(code), city=str(name), postcode=postcode, label=str(name))
            )
        if not geometries:
            raise GeocoderError(f"{path} holds no commune")
        self._geometries = np.array(geometries, dtype=object)
        shapely.prepare(self._geometries)
        self._tree = shapely.STRtree(self._geometries)
        self._places = places

    def __len__(self) -> int:
        return len(self._places)

    def reverse_many(self, points: Sequence[Point]) -> list[Place | None]:
        """The commune containing each point (on a shared border, the first in file order)."""
        if not points:
            return []
        import numpy as np
        import shapely

        coords = np.asarray(points, dtype=float).reshape(-1, 2)
        geoms = shapely.points(coords[:, 1], coords[:, 0])
        point_index, commune_index = self._tree.query(geoms, predicate="intersects")
        found: list[Place | None] = [None] * len(points)
        # on a shared border keep the lowest commune index (file order), for determinism:
        # sort by (point, commune) and take each point's first pair, all in numpy
        order = np.lexsort((commune_index, point_index))
        hit_points, first = np.unique(point_index[order], return_index=True)
        places = self._places
        for p, c in zip(hit_points.tolist(), commune_index[order][first].tolist(), strict=True):
            found[p] = places[c]
        return found


@functools.cache
def commune_geocoder(path: Path) -> CommuneGeocoder:
    """One parsed polygon file per process (the national file takes seconds to index)."""
    return CommuneGeocoder(path)


# --- production: the national address base's reverse API ------------------------------------

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class BanGeocoder:
    """Reverse geocoding through the Base Adresse Nationale API (`POST {url}/reverse/csv/`).

    Points go by batches of `batch_size` as a CSV upload; the answer repeats each input row with
    `result_*` columns. Results are cached by coordinates rounded to `cache_decimals` (5 decimals
    is about a metre), so the same venue is asked once per process.
    """

    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 1000,
        max_retries: int = 3,
        backoff_seconds: float = 0.5,
        timeout_seconds: float = 60.0,
        cache_decimals: int = 5,
        client: httpx.Client | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.cache_decimals = cache_decimals
        if client is None:
            import httpx

            client = httpx.Client(timeout=timeout_seconds)
        self._client = client
        self._cache: dict[Point, Place | None] = {}
        self._lock = threading.Lock()
        self.requests = 0

    def _key(self, point: Point) -> Point:
        return (round(point[0], self.cache_decimals), round(point[1], self.cache_decimals))

    def reverse_many(self, points: Sequence[Point]) -> list[Place | None]:
        """One Place (or None) per point; unknown points are asked by batches."""
        keys = [self._key(p) for p in points]
        with self._lock:
            missing = list(dict.fromkeys(k for k in keys if k not in self._cache))
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start : start + self.batch_size]
            answers = self._reverse_batch(batch)
            with self._lock:
                self._cache.update(zip(batch, answers, strict=True))
        with self._lock:
            return [self._cache[k] for k in keys]

    def _reverse_batch(self, batch: list[Point]) -> list[Place | None]:
        body = io.StringIO()
        writer = csv.writer(body)
        writer.writerow(["id", "lat", "lon"])
        for number, (lat, lon) in enumerate(batch):
            writer.writerow([number, lat, lon])
        endpoint = f"{self.url}/reverse/csv/"
        response = self._post_with_retries(endpoint, body.getvalue(), len(batch))
        found: list[Place | None] = [None] * len(batch)
        for row in csv.DictReader(io.StringIO(response.text)):
            try:
                number = int(row["id"])
            except (KeyError, ValueError):
                raise GeocoderError(
                    f"{endpoint}: answer row without the id column: {row}"
                ) from None
            code = row.get("result_citycode") or ""
            if not code or not 0 <= number < len(batch):
                continue
            found[number] = Place(
                insee_code=code,
                city=row.get("result_city") or "",
                postcode=row.get("result_postcode") or None,
                street=row.get("result_street") or row.get("result_name") or None,
                label=row.get("result_label") or None,
            )
        return found

    def _post_with_retries(self, endpoint: str, csv_text: str, size: int) -> httpx.Response:
        import httpx

        attempt = 0
        while True:
            attempt += 1
            try:
                self.requests += 1
                response = self._client.post(
                    endpoint, files={"data": ("points.csv", csv_text.encode(), "text/csv")}
                )
            except httpx.TransportError as exc:
                if attempt > self.max_retries:
                    raise GeocoderError(
                        f"{endpoint}: batch of {size} points failed after {attempt} attempts: {exc}"
                    ) from exc
                error = str(exc)
            else:
                if response.status_code == 200:
                    return response
                if response.status_code not in RETRYABLE_STATUS or attempt > self.max_retries:
                    raise GeocoderError(
                        f"{endpoint}: batch of {size} points answered HTTP "
                        f"{response.status_code} (attempt {attempt}): {response.text[:200]}"
                    )
                error = f"HTTP {response.status_code}"
            delay = self.backoff_seconds * 2 ** (attempt - 1)
            log.warning("%s: %s, retrying in %.1f s", endpoint, error, delay)
            time.sleep(delay)


@functools.cache
def ban_geocoder(
    url: str, batch_size: int, max_retries: int, backoff_seconds: float
) -> BanGeocoder:
    """One API client (and so one cache of answers) per process and configuration."""
    return BanGeocoder(
        url, batch_size=batch_size, max_retries=max_retries, backoff_seconds=backoff_seconds
    )
