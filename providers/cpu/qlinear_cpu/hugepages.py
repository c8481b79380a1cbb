"""Packed weights on 2 MiB pages (Linux transparent huge pages), where the kernels stream them.

At small M the kernels read every weight byte once per call, straight from DRAM: a 4096x14336 INT8
weight spans 14,336 pages of 4 KiB, each a TLB miss and a page walk on the way. With THP in its
``madvise`` mode (the default of most distributions, and of this project's CI machine) anonymous
memory gets 2 MiB pages only where the program asks for them, before the first touch: so the packed
weight is copied into a 2 MiB-aligned buffer that was madvise(MADV_HUGEPAGE)d first. Interleaved A/B
on the CI CPU (2 threads; docs/cpu-results.md, `HUGEPAGES_AB=1 python bench/cpu_ab.py ...`): at M=1,
INT8 W8A8 819 -> 711 us on 4096x4096 and 3713 -> 2314 us on 4096x14336, W4A16 g128 on 4096x14336
2250 -> 1611 us.

``QLINEAR_CPU_HUGEPAGES=0`` turns it off. Elsewhere (not Linux, no madvise, THP ``never``: the call
then succeeds and changes nothing) and for tensors under 4 MiB the tensor is used as it is.
"""

from __future__ import annotations

import ctypes
import functools
import sys

import torch

from qlinear.settings import env_int

ENABLED = env_int("QLINEAR_CPU_HUGEPAGES", 1, minimum=0)
PAGE = 2 << 20  # x86-64 transparent huge page
MIN_BYTES = 2 * PAGE  # below, at most one whole huge page would fit: not worth a copy
_MADV_HUGEPAGE = 14  # <linux/mman.h>


@functools.lru_cache(maxsize=None)
def _madvise():
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def place(t: torch.Tensor) -> torch.Tensor:
    """``t`` (a CPU tensor) copied onto memory advised for 2 MiB pages, or ``t`` itself where that does
    not apply. Load time only: one extra copy of the packed weight."""
    nbytes = t.numel() * t.element_size()
    madvise = _madvise()
    if not ENABLED or madvise is None or t.device.type != "cpu" or nbytes < MIN_BYTES:
        return t
    buf = torch.empty(nbytes + PAGE, dtype=torch.uint8)  # not touched yet: pages fault in after madvise
    start = -(-buf.data_ptr() // PAGE) * PAGE
    if madvise(start, nbytes // PAGE * PAGE, _MADV_HUGEPAGE) != 0:
        return t
    off = start - buf.data_ptr()  # a multiple of the allocator's 64-byte alignment: fits any dtype
    out = buf[off:off + nbytes].view(t.dtype).view(t.shape)  # shares buf's storage, which it keeps alive
    out.copy_(t)
    return out
