"""COPY input is cut into record batches the ADBC driver can stream (resources.adbc_copy)."""

from __future__ import annotations

import pyarrow as pa

from resources.adbc_copy import COPY_BATCH_ROWS, in_copy_batches


def test_one_large_batch_is_cut_into_copy_batches_with_the_same_rows() -> None:
    rows = 2 * COPY_BATCH_ROWS + 5
    table = pa.table({"id": pa.array(range(rows)), "name": pa.array([str(i) for i in range(rows)])})
    table = table.combine_chunks()  # one batch, as a sort or a take leaves it
    assert len(table.to_batches()) == 1
    batched = in_copy_batches(table)
    sizes = [batch.num_rows for batch in batched.to_batches()]
    assert sizes == [COPY_BATCH_ROWS, COPY_BATCH_ROWS, 5]
    assert batched.schema == table.schema
    assert batched.equals(table)


def test_an_empty_table_stays_empty_with_its_schema() -> None:
    table = pa.table({"id": pa.array([], pa.int64())})
    batched = in_copy_batches(table)
    assert batched.num_rows == 0
    assert batched.schema == table.schema
