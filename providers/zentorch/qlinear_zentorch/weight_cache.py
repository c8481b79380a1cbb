"""Guard against zentorch's address-keyed weight cache.

Observed with zentorch 2.13.0.2: ZenDNN keeps a reordered copy of each weight it sees, looked up by
the weight buffer's address (``ZENDNNL_MATMUL_WEIGHT_CACHE``, on by default). When a layer is freed
and a new weight of the same shape is later allocated at the same address, ``zentorch_woq_linear``
(and non-prepacked ``zentorch_dynamic_qlinear``) silently compute with the OLD layer's weights. An
in-place change of a weight is likewise not seen. Turning the cache off makes every call re-order
the weight (2-3x slower here), so instead we make sure a buffer we hand to zentorch never sits at
an address an earlier, now-dead buffer of ours used: such a buffer is parked (kept allocated for the
life of the process, which zentorch's stale cache entry already is) and the data moved elsewhere.

Both kernels (W4A16 and W8A8, whose prepacked path is wrong for K > 2048) hand zentorch plain
weights, so both go through this guard.
"""

from __future__ import annotations

import threading
import weakref

import torch

_lock = threading.Lock()
_owners: dict[int, weakref.ref] = {}  # address -> the Parameter that was handed to zentorch there
_parked: list[torch.Tensor] = []  # buffers whose address a dead owner used: never freed


def place(t: torch.Tensor) -> torch.Tensor:
    """``t`` or a copy of it at an address no dead buffer of ours has used (parks the rejects)."""
    with _lock:
        for _ in range(64):
            ref = _owners.get(t.data_ptr())
            if ref is None or ref() is not None:  # never used, or used by a live tensor (same storage)
                return t
            _parked.append(t)
            t = t.clone()
        raise RuntimeError("zentorch weight cache guard: could not find a fresh address in 64 tries")


def claim(p: torch.Tensor) -> None:
    """Record that ``p`` (the live Parameter on the layer) is handed to zentorch at its address."""
    with _lock:
        _owners[p.data_ptr()] = weakref.ref(p)
