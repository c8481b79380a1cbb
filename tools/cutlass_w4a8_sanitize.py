"""Every W4A8 path of the cutlass provider on small layers, for ``compute-sanitizer`` (memcheck) runs:
bf16 and fp16 in and out, groups 128 / 256 / channel, each tile configuration, M = 1, 33, 201
(partial tiles), with and without bias, x with strided rows. Prints "OK: every path" at the end; the
sanitizer's exit code is the verdict."""

import os

import torch

from qlinear import testing
from qlinear.config import W4A8LinearLayerConfig
from qlinear.layers import make_layer
from qlinear_cutlass.w4a8 import CutlassW4A8LinearKernel as W

BF, FP = torch.bfloat16, torch.float16
CASES = [W4A8LinearLayerConfig((256, 512), 128), W4A8LinearLayerConfig((272, 512), 256, FP),  # N not a multiple of 128
         W4A8LinearLayerConfig((256, 640), -1, BF, FP)]  # channelwise, K of 5 K tiles

for tile in ("small", "mid", "large"):
    os.environ["QLINEAR_CUTLASS_W4A8_TILE"] = tile
    for c in CASES:
        n, k = c.weight_shape
        for m in (1, 33, 201):
            params, x, bias = testing.make_case_layer(testing.Case(c, m, with_bias=m != 33), "cuda")
            layer = make_layer(c, params)
            kern = W.create(c)
            kern.process_weights_after_loading(layer)
            out = kern.apply(layer, x, bias)
            wide = torch.zeros(m, k + 64, dtype=x.dtype, device="cuda")
            wide[:, 64:] = x
            out2 = kern.apply(layer, wide[:, 64:], bias)  # strided rows
            torch.cuda.synchronize()
            assert torch.isfinite(out).all() and torch.equal(out, out2), (tile, c, m)
print("OK: every path")
