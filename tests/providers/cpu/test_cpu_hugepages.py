"""Packed weights on 2 MiB pages (qlinear_cpu/hugepages.py): the copy is exact and aligned, the OS
really backs it with huge pages where THP allows it, small tensors and the off switch leave the
tensor alone, and a kernel reading a weight placed that way gives bit-identical outputs."""

import pathlib
import sys

import pytest
import torch

pytest.importorskip("qlinear_cpu")

from qlinear import Int8ScaledMMLinearLayerConfig  # noqa: E402
from qlinear.layers import make_layer, quantize_layer_params  # noqa: E402
from qlinear_cpu import caps, hugepages  # noqa: E402
from qlinear_cpu.int8 import CpuAmxInt8ScaledMMLinearKernel  # noqa: E402

linux_only = pytest.mark.skipif(hugepages._madvise() is None, reason="madvise is Linux-only")


def _thp_mode() -> str | None:
    """The bracketed word of /sys/kernel/mm/transparent_hugepage/enabled, or None."""
    try:
        text = pathlib.Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return None
    return text[text.index("[") + 1:text.index("]")] if "[" in text else None


def _anon_huge_kib(addr: int) -> int | None:
    """AnonHugePages (KiB) of the mapping of this process that holds ``addr`` (/proc/self/smaps)."""
    inside = False
    for line in pathlib.Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and ":" not in head:  # a mapping's first line: "start-end perms ..."
            lo, hi = (int(v, 16) for v in head.split("-"))
            inside = lo <= addr < hi
        elif inside and line.startswith("AnonHugePages:"):
            return int(line.split()[1])
    return None


@linux_only
def test_place_copies_exactly_onto_an_aligned_buffer():
    t = torch.randint(-128, 127, (3000, 2000), dtype=torch.int8)  # 5.7 MiB
    out = hugepages.place(t)
    assert out is not t and torch.equal(out, t) and out.dtype == t.dtype and out.is_contiguous()
    assert out.data_ptr() % hugepages.PAGE == 0
    f = torch.randn(1100, 1100)  # float32 4.6 MiB: the byte offset into the buffer must fit the dtype
    assert torch.equal(hugepages.place(f), f)


@linux_only
@pytest.mark.skipif(_thp_mode() not in ("always", "madvise"), reason=f"transparent huge pages: {_thp_mode()}")
def test_the_os_backs_the_placed_weight_with_huge_pages():
    out = hugepages.place(torch.ones(8 * hugepages.PAGE, dtype=torch.uint8))
    kib = _anon_huge_kib(out.data_ptr())
    assert kib is not None and kib >= hugepages.PAGE // 1024, f"AnonHugePages {kib} KiB for a 16 MiB weight"


def test_small_tensors_and_the_off_switch_leave_the_tensor_alone(monkeypatch):
    small = torch.zeros(hugepages.MIN_BYTES - 1, dtype=torch.uint8)
    assert hugepages.place(small) is small
    big = torch.zeros(hugepages.MIN_BYTES, dtype=torch.uint8)
    monkeypatch.setattr(hugepages, "ENABLED", 0)
    assert hugepages.place(big) is big
    monkeypatch.setattr(hugepages, "_madvise", lambda: None)  # not Linux
    monkeypatch.setattr(hugepages, "ENABLED", 1)
    assert hugepages.place(big) is big


@pytest.mark.skipif(not caps.gate()[0] or not sys.platform.startswith("linux"), reason=f"{caps.gate()[1]}")
def test_int8_kernel_reads_a_placed_weight_bit_identically(monkeypatch):
    """A layer big enough to be placed (2048 x 4096 int8: 8 MiB packed) against the same layer with
    placement off: same outputs, bit for bit (the kernel takes the view's offset into its buffer)."""
    n, k = 2048, 4096
    c = Int8ScaledMMLinearLayerConfig(False, True, True, (n, k), torch.bfloat16)
    g = torch.Generator().manual_seed(7)
    params = quantize_layer_params(c, torch.randn(n, k, generator=g) * 0.05)
    outs = []
    for enabled in (1, 0):
        monkeypatch.setattr(hugepages, "ENABLED", enabled)
        layer = make_layer(c, {name: v.clone() for name, v in params.items()})
        kern = CpuAmxInt8ScaledMMLinearKernel.create(c)
        kern.process_weights_after_loading(layer)
        w = layer.weight
        assert (w.data_ptr() % hugepages.PAGE == 0) == bool(enabled)
        x = torch.randn(5, k, generator=torch.Generator().manual_seed(1)).bfloat16()
        outs.append(kern.apply_weights(layer, x))
    assert torch.equal(outs[0], outs[1])
