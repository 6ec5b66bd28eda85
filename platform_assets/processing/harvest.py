"""What the harvester stores: catalogue products and our own products, as `processing.input` rows.

Pure: no Dagster, no database. The Dagster layer (assets.py) reads the catalogue and the product
table, maps them here, and inserts the rows idempotently (`ON CONFLICT (catalogue_id) DO NOTHING`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath

from resources.catalogue_client import CatalogueProduct

# S2B_MSIL2A_20260310T105029_N0510_R051_T31TCJ_20260310T131512.SAFE -> mission S2B, level L2A
_S2_NAME = re.compile(r"^(?P<mission>S2[A-D])_MSI(?P<level>L1C|L2A)_")
# Copernicus product types of the Sentinel-2 levels (the `productType` attribute)
_S2_TYPES = {"L1C": "S2MSI1C", "L2A": "S2MSI2A"}
_S2_PATH_LEVELS = {"L1C": "L1C", "L2A": "L2A"}

PRODUCT_ID_PREFIX = "product:"


@dataclass(frozen=True)
class InputRow:
    """One `processing.input` row (without the columns the database fills)."""

    product_type: str
    catalogue_id: str
    name: str
    path: str | None
    measurement_date: datetime | None
    publication_date: datetime | None
    tile: str | None
    source: str  # 'catalogue' or 'product'
    source_product_id: int | None = None


@dataclass(frozen=True)
class ProductRow:
    """A `processing.product` row joined with what its task's input knew (date, tile)."""

    id: int
    path: str
    product_type: str
    created_at: datetime
    measurement_date: datetime | None = None
    tile: str | None = None


def product_type_from_name(name: str, collection: str) -> str:
    """The product type of a catalogue item, from its name (the catalogue's `productType`).

    Sentinel-2 names map to Copernicus types (`MSIL2A` -> `S2MSI2A`); other missions keep the
    name's second field prefixed by the collection, which is stable enough to match routines on.
    """
    match = _S2_NAME.match(name)
    if match:
        return _S2_TYPES[match.group("level")]
    parts = name.split("_")
    return f"{collection}:{parts[1]}" if len(parts) > 1 and parts[1] else collection


def eodata_path(product: CatalogueProduct) -> str | None:
    """Where Copernicus keeps a Sentinel-2 product (`/eodata/Sentinel-2/MSI/L2A/YYYY/MM/DD/...`).

    The catalogue client does not carry `S3Path`; for Sentinel-2 it follows from the name and the
    sensing date. Other collections get None and are located by the launcher.
    """
    match = _S2_NAME.match(product.name)
    if not match:
        return None
    day = product.content_start
    level = _S2_PATH_LEVELS[match.group("level")]
    return f"/eodata/Sentinel-2/MSI/{level}/{day:%Y/%m/%d}/{product.name}"


def input_from_catalogue(product: CatalogueProduct) -> InputRow:
    """A catalogue product as an input; its catalogue id is its identity."""
    return InputRow(
        product_type=product_type_from_name(product.name, product.collection),
        catalogue_id=product.id,
        name=product.name,
        path=eodata_path(product),
        measurement_date=product.content_start,
        publication_date=product.publication_date,
        tile=product.tile,
        source="catalogue",
    )


def input_from_product(row: ProductRow) -> InputRow:
    """One of our products as an input of the next routine (`product:<id>`)."""
    return InputRow(
        product_type=row.product_type,
        catalogue_id=f"{PRODUCT_ID_PREFIX}{row.id}",
        name=PurePosixPath(row.path).name or f"product-{row.id}",
        path=row.path,
        measurement_date=row.measurement_date,
        publication_date=row.created_at,
        tile=row.tile,
        source="product",
        source_product_id=row.id,
    )


def catalogue_source_key(collection: str, name_contains: Sequence[str]) -> str:
    """The `ops.harvest_cursor` key of a catalogue query: another filter is another window."""
    return "catalogue:" + collection + "".join(f"+{part}" for part in sorted(name_contains))


@dataclass(frozen=True)
class HarvestChunk:
    """Inputs to insert in one transaction, and how far the window may then advance."""

    rows: tuple[InputRow, ...]
    advance_to: datetime | None


def chunk_by_publication(
    products: Iterable[CatalogueProduct], size: int = 500
) -> Iterator[HarvestChunk]:
    """Group products (in publication order) into chunks whose window end is safe to store.

    The catalogue is queried with `PublicationDate gt <window>`, so a chunk may only move the window
    to a date all of whose products it holds: products sharing the chunk's last date wait for the
    next chunk. Duplicates (a product seen twice while paging) are dropped.
    """
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    buffer: list[CatalogueProduct] = []
    seen: set[str] = set()
    for product in products:
        if product.id in seen:
            continue
        seen.add(product.id)
        buffer.append(product)
        if len(buffer) < size:
            continue
        last = buffer[-1].publication_date
        cut = next((i for i, p in enumerate(buffer) if p.publication_date >= last), len(buffer))
        if cut == 0:
            continue  # every buffered product shares one date: keep gathering
        head, buffer = buffer[:cut], buffer[cut:]
        yield HarvestChunk(
            tuple(input_from_catalogue(p) for p in head),
            max(p.publication_date for p in head),
        )
    if buffer:
        yield HarvestChunk(
            tuple(input_from_catalogue(p) for p in buffer),
            max(p.publication_date for p in buffer),
        )
