"""The mid-M W4A16 kernels (w4a16_swap_kernels: the swapped kernel out^T = W^T x^T and the B-operand
kernel) on CPU through Triton's interpreter: the conformance kit with every M routed to them, and
each variant (plain, WIDE, PAIR, REG, B-operand) over group sizes, zero points, act-order (regular and
irregular groups), ragged M, padded K and forced K splits against the exact float product. The GPU
tests run them compiled (test_w4a16_swap_gpu.py)."""

import pytest

from qlinear import testing

from .conftest import interpreter_only, runnable_here
from .test_kernels_cpu import _w4_layer

pytestmark = interpreter_only


def _swap_everywhere():
    """The W4A16 kernel with the swapped kernel serving every M (the kit's M = 16 and 33)."""
    from qlinear_triton.mp import TritonW4A16LinearKernel

    return type("TritonW4A16LinearKernel", (runnable_here(TritonW4A16LinearKernel),),
                {"swap_min_m": 1, "swap_max_m": 1 << 30})


def _kit_cases():
    k = _swap_everywhere()
    return [pytest.param(k, c, id=str(c)) for c in testing.cases_for(k, ms=(16, 33)) if k.can_implement(c.config)[0]]


@pytest.mark.parametrize("kernel,case", _kit_cases())
def test_swap_conformance(kernel, case):
    assert testing.run_case(kernel, case, device="cpu").ran


def test_swap_serves_its_range_only():
    """Shipped routing (measured on the H200, configs.w4a16_swap_tile): the weight-as-B kernel for
    33 <= M <= 64 on every layer and up to M = 128 on wide ones (N >= 16384); the GEMV, 16-row tiles
    and dequantize + cuBLAS elsewhere; swap_max_m = 0 restores those everywhere."""
    from qlinear_triton.configs import GemvTile, SwapTile, Tile
    from qlinear_triton.mp import TritonW4A16LinearKernel

    c, layer, _ = _w4_layer(64, 256, 128)
    kern = runnable_here(TritonW4A16LinearKernel).create(c)
    kern.process_weights_after_loading(layer)
    assert (kern.swap_min_m, kern.swap_max_m) == (33, 128)
    assert isinstance(kern.tile_for(1), GemvTile)
    assert all(isinstance(kern.tile_for(m), Tile) for m in (8, 16, 32))
    assert all(isinstance(kern.tile_for(m), SwapTile) and kern.tile_for(m).bmajor for m in (33, 40, 64))
    assert kern._mid_tile(65) is None and kern._mid_tile(128) is None  # narrow layer: dequantize + cuBLAS
    from qlinear_triton.configs import w4a16_swap_tile

    assert w4a16_swap_tile(128, 28672, 4096, 128).bmajor and w4a16_swap_tile(128, 4096, 14336, 128) is None
    assert kern._mid_tile(129) is None  # above swap_max_m, whatever the layer
    kern.swap_max_m = 0
    assert kern._mid_tile(64) is None and isinstance(kern.tile_for(64), Tile)


VARIANTS = {"plain": {}, "wide": {"wide": True}, "wide8": {"wide": True, "slab_scales": True}, "pair": {"pair": True},
            "reg": {"reg": True}, "wideb": {"bmajor": True}, "wideb8": {"bmajor": True, "slab_scales": True}}
LAYERS = {  # name: (group, k, zero points, act-order)
    "channel": (-1, 200, False, False),
    "g32-zp": (32, 256, True, False),
    "g64": (64, 384, False, False),
    "g128-zp": (128, 384, True, False),
    "g128-actorder": (128, 256, False, True),
}


@pytest.mark.parametrize("m", [16, 33, 64, 127, 128, 255])
@pytest.mark.parametrize("layer_kind", list(LAYERS))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_swap_variants(variant, layer_kind, m):
    import torch

    from qlinear_triton.configs import SwapTile
    from qlinear_triton.mp import TritonW4A16LinearKernel

    group, k, zp, act = LAYERS[layer_kind]
    n = 96  # not a multiple of BN: the last tile wraps its columns and masks its stores
    g_idx = None
    if act:
        perm = torch.randperm(k, generator=torch.Generator().manual_seed(5))
        g_idx = (torch.arange(k) // group).to(torch.int32)[perm]
    c, layer, w = _w4_layer(n, k, group, g_idx=g_idx, zp=zp, seed=m)
    kern = runnable_here(TritonW4A16LinearKernel).create(c)
    kern.process_weights_after_loading(layer)
    bm = 64 if m <= 64 else 128
    splits = 2 if m % 2 else None  # odd M: forced K splits (fp32 partials + the ordered reduction)
    kern.pin_tile(SwapTile(bm, 64, 4, 1, splits=splits, **VARIANTS[variant]))
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(1)).bfloat16()
    bias = torch.randn(n, generator=torch.Generator().manual_seed(2)).bfloat16()
    out = kern.apply(layer, x, bias)
    ref = x.double() @ w.double().t() + bias.double()
    assert out.shape == (m, n) and out.dtype == torch.bfloat16
    assert float((out.double() - ref).norm() / ref.norm()) < 1e-2


@pytest.mark.parametrize("variant", ["plain", "wide", "pair", "wideb"])
def test_swap_irregular_g_idx(variant):
    """Groups of unequal size after sorting: per-row scale lookup (REG falls back to plain)."""
    import torch

    from qlinear_triton.configs import SwapTile
    from qlinear_triton.mp import TritonW4A16LinearKernel

    k, group = 128, 32
    g_idx = torch.tensor([0] * 20 + [1] * 44 + [2] * 32 + [3] * 32, dtype=torch.int32)
    g_idx = g_idx[torch.randperm(k, generator=torch.Generator().manual_seed(3))]
    c, layer, w = _w4_layer(32, k, group, g_idx=g_idx)
    kern = runnable_here(TritonW4A16LinearKernel).create(c)
    kern.process_weights_after_loading(layer)
    assert kern._has_gsorted
    kern.pin_tile(SwapTile(32, 64, 4, 1, **VARIANTS[variant]))
    x = torch.randn(20, k, generator=torch.Generator().manual_seed(4)).bfloat16()
    out = kern.apply(layer, x)
    ref = x.double() @ w.double().t()
    assert float((out.double() - ref).norm() / ref.norm()) < 1e-2


def test_swap_matches_old_tiles_fp16():
    """fp16 activations (REG's other 16-bit decode constant): the swapped kernel's three variants
    agree with the old tile kernel's output."""
    import torch

    from qlinear.config import MPLinearLayerConfig
    from qlinear_triton.configs import SwapTile, Tile
    from qlinear_triton.mp import TritonW4A16LinearKernel

    c, layer, w = _w4_layer(64, 256, 64, zp=True)
    c = MPLinearLayerConfig(c.full_weight_shape, c.partition_weight_shape, c.weight_type, torch.float16, c.group_size,
                            c.zero_points, c.has_g_idx)
    kern = runnable_here(TritonW4A16LinearKernel).create(c)
    kern.process_weights_after_loading(layer)
    x = torch.randn(40, 256, generator=torch.Generator().manual_seed(6)).half()
    kern.pin_tile(Tile(64, 64, 128, 1, 4, 1))
    old = kern.apply(layer, x).double()
    for v in VARIANTS.values():
        kern.pin_tile(SwapTile(64, 64, 4, 1, **v))
        new = kern.apply(layer, x).double()
        assert float((new - old).norm() / old.norm()) < 5e-3
