"""Every kernel path on small layers, for ``compute-sanitizer`` (memcheck / racecheck) runs: FP8 with
each activation scheme, INT8 symmetric / asymmetric / static, block FP8, each tile configuration,
M = 1, 33, 201, with and without bias. Prints "OK: every path" at the end; the sanitizer's exit code is the verdict."""

import os

import torch

from qlinear import quant_key as qk, testing
from qlinear.config import FP8ScaledMMLinearLayerConfig as FP8C, Int8ScaledMMLinearLayerConfig as I8C
from qlinear.layers import make_layer
from qlinear_cutlass.fp8 import CutlassFP8ScaledMMLinearKernel as FP8
from qlinear_cutlass.fp8_block import CutlassFp8BlockScaledMMLinearKernel as BLOCK
from qlinear_cutlass.int8 import CutlassInt8ScaledMMLinearKernel as INT8

CASES = [(FP8, FP8C(qk.kFp8StaticChannelSym, a, (256, 512), dt)) for a, dt in (
    (qk.kFp8DynamicTokenSym, torch.bfloat16), (qk.kFp8DynamicTensorSym, torch.float16), (qk.kFp8StaticTensorSym, torch.bfloat16))]
CASES += [(INT8, I8C(st, True, sym, (256, 512), dt)) for st, sym, dt in (
    (False, True, torch.bfloat16), (False, False, torch.float16), (True, False, torch.bfloat16))]
CASES += [(BLOCK, FP8C(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (256, 512), torch.bfloat16))]

for tile in ("small", "mid", "large"):
    os.environ["QLINEAR_CUTLASS_TILE"] = tile
    for kc, c in CASES:
        for m in (1, 33, 201):  # 33 and 201: partial tiles; 201 pads to 204 rows for block FP8
            params, x, bias = testing.make_case_layer(testing.Case(c, m, with_bias=m != 33), "cuda")
            layer = make_layer(c, params)
            k = kc.create(c)
            k.process_weights_after_loading(layer)
            out = k.apply(layer, x, bias)
            torch.cuda.synchronize()
            assert torch.isfinite(out).all(), (tile, c, m)
print("OK: every path")
