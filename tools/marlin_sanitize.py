"""Run every kernel path once on small layers, for compute-sanitizer (memcheck / racecheck / synccheck):
integer 4/8-bit with and without zero points, the 4-bit decode kernel (1 and 2 row blocks, act-order
gather, stream-K), the float / 8-bit decode kernel (1 and 2 row blocks), act-order with uneven groups,
split-K and single-slice tiles, 1/2/4 m16 tiles, float formats, and the dequant + cuBLAS path. Prints
OK at the end."""

from __future__ import annotations

import torch

from qlinear import testing
from qlinear.config import MPLinearLayerConfig, Mxfp8LinearLayerConfig, NvFp4LinearLayerConfig
from qlinear.layers import make_layer
from qlinear.scalar_type import scalar_types
from qlinear_marlin import runtime
from qlinear_marlin.fp import MarlinMxfp8LinearKernel, MarlinNvFp4LinearKernel
from qlinear_marlin.mp import MarlinMPLinearKernel


def run(kc, c, m, dense=False, tile=False):
    case = testing.Case(c, m)
    params, x, bias = testing.make_case_layer(case, "cuda")
    layer = make_layer(c, params)
    k = kc.create(c)
    if dense:
        k.dequant_min_m = 1
    if tile:
        k.decode_max_m = 0
    k.process_weights_after_loading(layer)
    out = k.apply(layer, x, bias)
    torch.cuda.synchronize()
    assert torch.isfinite(out.float()).all(), f"{case}: non-finite output"


def main() -> None:
    mp = MarlinMPLinearKernel
    t = scalar_types
    plan = [  # (config, Ms): 1, 2 and 4 m16 tiles, split-K and not, zero points, act-order, 8-bit
        (MPLinearLayerConfig((512, 128), (512, 128), t.uint4b8, torch.bfloat16, 128, False, False), (1, 20, 70)),
        (MPLinearLayerConfig((512, 128), (512, 128), t.uint4, torch.float16, 64, True, True), (1, 40)),
        (MPLinearLayerConfig((1024, 128), (512, 128), t.uint4b8, torch.float16, 32, False, True), (5,)),
        (MPLinearLayerConfig((512, 128), (512, 128), t.uint8, torch.bfloat16, 32, True, False), (1, 40)),
    ]
    for c, ms in plan:
        for m in ms:
            run(mp, c, m)
    for c, _ in plan[:3]:  # 4-bit at M <= 16 took the decode kernel above: the tile kernel too, and 9..16 rows
        run(mp, c, 1, tile=True)
        run(mp, c, 12)
    runtime.DECODE_STREAMK = 1  # the 4-bit decode kernel's stream-K deal
    for c, _ in plan[:3]:
        run(mp, c, 1)
        run(mp, c, 12)
    runtime.DECODE_STREAMK = 0
    run(mp, plan[3][0], 12)  # 8-bit codes with zero points at 9..16 rows: both row blocks in one block
    run(mp, plan[0][0], 3, dense=True)
    for m in (1, 12, 40):  # float decode kernel (one and two row blocks), then the tile kernel
        run(MarlinNvFp4LinearKernel, NvFp4LinearLayerConfig((128, 512), torch.float16), m)
        run(MarlinMxfp8LinearKernel, Mxfp8LinearLayerConfig((128, 512), torch.bfloat16), m)
    run(MarlinMxfp8LinearKernel, Mxfp8LinearLayerConfig((128, 512), torch.bfloat16), 3, dense=True)
    print("OK: every path ran")


if __name__ == "__main__":
    main()
