"""The edge's garbage collector, set once the edge has started (issue 17).

A batch request allocates a few hundred containers (its parsed body, a tuple or two
per event) that live until its buffer append returns. Under CPython's default
thresholds (a young collection every 700 net allocations) they survive into the old
generations, and the full collections that follow walk every module, class and
function the process has imported: a quarter of a loaded edge's time went there.

Once started, the edge moves what startup made to the permanent generation, which no
collection walks (``gc.freeze``), and runs a young collection only after ``GEN0`` net
allocations, by which time the requests that made them have finished and freed them.
Reference counting frees all but cyclic garbage at once either way, so memory grows by
at most the cycles made between two collections.
"""

from __future__ import annotations

import gc

GEN0 = 10_000
GEN1 = 10
GEN2 = 10


def settle() -> None:
    """Collect once, freeze what survives, and raise the young generation's threshold."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0, GEN1, GEN2)
