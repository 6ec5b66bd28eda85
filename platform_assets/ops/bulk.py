"""Helpers for bulk work in Python: what every domain's batch parse, transform or load needs."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector over a bulk transform or load.

    Batches allocate millions of small acyclic objects (dicts, models, row tuples): each
    allocation threshold crossed makes the collector walk the young objects and, ever more often,
    the whole heap; that was half the transform's CPU on 100,000 records. Reference counting
    still frees everything. On the way out the batch's survivors go straight to the oldest
    generation (`freeze` then `unfreeze`, both O(1)) instead of being walked all at once by the
    next young collection (a second on 100,000 records); they are usually freed by reference
    counting before a full collection comes. Skipped when something else froze objects (a
    preloading server does), not to unfreeze those.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()
