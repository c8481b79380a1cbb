"""Every mixed-input path of the cutlass provider on small layers, for ``compute-sanitizer`` (memcheck) runs:
W4A16 GPTQ (uint4b8) and AWQ (uint4 + zero points), W8A16 (uint8b128), bf16 and fp16, groups 64 / 128 /
channel, act-order, each tile configuration, M = 1, 33, 201 (partial tiles), with and without bias, x
with strided rows; then the decode kernel on the W4A16 and W8A16 weights (M = 1, 9, 16) with split-K,
warps, PDL and 8-row halves of x forced (``--decode-only``: that part alone); last the act-order gathers
on their own (per element and row-staged; K past 48 KB of shared memory, strided and misaligned x;
``--gather-only``: that part alone, the bf16 W4A16 extension only).
Prints "OK: every path" at the end; the sanitizer's exit code is the verdict."""

import os
import sys

import torch

from qlinear import testing
from qlinear.config import MPLinearLayerConfig
from qlinear.layers import make_layer
from qlinear.scalar_type import scalar_types
from qlinear_cutlass.configs import W4A16_TILES
from qlinear_cutlass.configs import w4a16_decode_applies as decode_applies
from qlinear_cutlass.w4a16 import CutlassW4A16LinearKernel as W4
from qlinear_cutlass.w4a16 import CutlassW8A16LinearKernel as W8
from qlinear_cutlass.w4a16 import decode_workspace

U4B8, U4, U8B128 = scalar_types.uint4b8, scalar_types.uint4, scalar_types.uint8b128
CASES = [MPLinearLayerConfig((k, n), (k, n), wt, dt, g, zp, gidx) for n, k, wt, dt, g, zp, gidx in (
    (256, 512, U4B8, torch.bfloat16, 128, False, False),
    (272, 512, U4, torch.float16, 64, True, False),  # N not a multiple of the 128-row tile
    (256, 576, U4B8, torch.float16, -1, False, False),  # channelwise, K not a multiple of 128
    (256, 512, U4, torch.bfloat16, 128, True, True),
    (272, 512, U8B128, torch.bfloat16, 128, False, False),
    (256, 576, U8B128, torch.float16, -1, False, False),
    (256, 512, U8B128, torch.bfloat16, 64, False, True),
)]

DECODE_ONLY = "--decode-only" in sys.argv  # the decode kernel's paths only
GATHER_ONLY = "--gather-only" in sys.argv  # the act-order gathers only
for tile in () if DECODE_ONLY or GATHER_ONLY else W4A16_TILES:
    os.environ["QLINEAR_CUTLASS_W4A16_TILE"] = tile
    for c in CASES:
        kc = W8 if c.weight_type == U8B128 else W4
        for m in (1, 33, 201):
            params, x, bias = testing.make_case_layer(testing.Case(c, m, with_bias=m != 33), "cuda")
            layer = make_layer(c, params)
            k = kc.create(c)
            k.process_weights_after_loading(layer)
            out = k.apply(layer, x, bias)
            wide = torch.zeros(m, c.K + 64, dtype=x.dtype, device="cuda")
            wide[:, 64:] = x
            out2 = k.apply(layer, wide[:, 64:], bias)  # strided rows read in place
            torch.cuda.synchronize()
            assert torch.isfinite(out).all() and torch.equal(out, out2), (tile, c, m)
# the decode kernel (M <= 16 on the same weight): one and two row blocks, the launcher's split-K and
# forced ones, 4- and 8-warp blocks, with and without PDL, one or two 8-row halves of x a block
os.environ.pop("QLINEAR_CUTLASS_W4A16_TILE", None)
for c in [] if GATHER_ONLY else CASES + [MPLinearLayerConfig((1024, 256), (1024, 256), U4, torch.float16, 64, True, False)]:
    kc = W8 if c.weight_type == U8B128 else W4
    if not decode_applies(1, c.N, c.K, c.effective_group_size, kc.bits):
        continue
    for m in (1, 9, 16):
        params, x, bias = testing.make_case_layer(testing.Case(c, m), "cuda")
        layer = make_layer(c, params)
        k = kc.create(c)
        k.process_weights_after_loading(layer)
        ref = k.apply(layer, x, bias)
        ws, cnt = decode_workspace(x.device, 8 * m * c.N, 2 * c.N // 64)
        zero = getattr(layer, k.w_zp_name) if k.w_zp_name else None
        # cluster False: the K slices through the workspace (the rule clusters them when they fit)
        for splits, warps, pdl, rows, cluster in ((3, 4, True, 1, True), (3, 4, True, 1, False), (8, 8, False, 2, True),
                                                  (1, 8, True, 0, True), (0, 4, True, 2, True), (0, 8, True, 2, False)):
            out = torch.empty_like(ref)
            k._decode(out, x, layer.weight_packed, layer.weight_scale, zero, bias, ws, cnt, k._group, splits, warps, pdl, rows,
                      cluster)
            torch.cuda.synchronize()
            assert torch.isfinite(out).all() and not cnt.any(), (c, m, splits, warps)
# the act-order gathers (csrc/act_order_gather.cuh): per element and blocks per row, rows up to 56 KB
from qlinear_cutlass.build import load  # noqa: E402
from qlinear_cutlass.w4a16_layout import gather_index  # noqa: E402

ext = load("w4a16-bf16")
for k in (512, 28672):
    perm = torch.randperm(k, device="cuda")
    for m in (1, 33, 300):  # 33: a row's output split over blocks (K = 28672); 300: the kernel without indices ahead
        wide = torch.randn(m, k + 72, device="cuda", dtype=torch.bfloat16)
        for x in (wide[:, 64:64 + k], wide[:, 1:1 + k]):
            for staged in (False, True):
                out = torch.empty_like(x, memory_format=torch.contiguous_format)
                ext.w4a16_gather(out, x, gather_index(perm), True, staged)
                torch.cuda.synchronize()
                assert torch.equal(out, x[:, perm]), (k, m, staged)
print("OK: every path")
