"""Binary COPY of an Arrow table through ADBC, in record batches the driver can stream.

The ADBC PostgreSQL driver encodes a whole record batch before sending any of it. A table of one
large batch (what ``take``, a sort or ``combine_chunks`` produce) is therefore encoded first and
copied after, one after the other; batches of a few ten thousand rows let the client encode the
next batch while the server parses the previous one. Measured here on 1M position rows into a
plain table: 3.2-3.5 s as one batch, 1.9-2.0 s in 32k-row batches, with the same client and
server CPU time (benchmarks/positions.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

COPY_BATCH_ROWS = 32_768


def in_copy_batches(data: pa.Table) -> pa.Table:
    """``data`` sliced (zero-copy) into record batches of at most ``COPY_BATCH_ROWS`` rows."""
    import pyarrow as pa

    return pa.Table.from_batches(data.to_batches(max_chunksize=COPY_BATCH_ROWS), data.schema)


def adbc_copy(cursor: Any, table: str, data: pa.Table, **options: Any) -> None:
    """``cursor.adbc_ingest(table, data, mode="append", **options)``, streamed in batches."""
    cursor.adbc_ingest(table, in_copy_batches(data), mode="append", **options)
