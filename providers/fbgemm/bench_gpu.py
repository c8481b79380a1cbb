"""GPU micro-benchmark of the fbgemm kernels against bf16 F.linear (run by gpu_check.sh).

Weights are rotated over enough layer copies to exceed the H100's 50 MB L2; inputs are random
(never zeros); timings are triton.testing.do_bench medians in µs, JIT/first-call time excluded.
Writes JSON to $OUT/fbgemm_bench.json and prints a table."""

from __future__ import annotations

import json
import os
import sys

import torch
import triton

import qlinear
from qlinear import quant_key as qk, testing
from qlinear.config import FP8ScaledMMLinearLayerConfig, Int8ScaledMMLinearLayerConfig, MPLinearLayerConfig
from qlinear.scalar_type import scalar_types as st

from qlinear_fbgemm.fp8 import FbgemmFp8RowwiseLinearKernel, FbgemmFp8TensorwiseLinearKernel
from qlinear_fbgemm.fp8_block import FbgemmFp8GroupwiseLinearKernel
from qlinear_fbgemm.int8 import FbgemmInt8LinearKernel
from qlinear_fbgemm.mp import FbgemmW4A16LinearKernel

N = K = 4096
MS = (1, 16, 128, 1024)
COPIES = 6  # 6 x 16 MiB fp8 weights > 50 MB L2


def configs():
    return [
        ("fp8 rowwise (ch x token)", FbgemmFp8RowwiseLinearKernel,
         FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (N, K))),
        ("fp8 tensorwise (static)", FbgemmFp8TensorwiseLinearKernel,
         FP8ScaledMMLinearLayerConfig(qk.kFp8StaticTensorSym, qk.kFp8StaticTensorSym, (N, K))),
        ("fp8 block groupwise", FbgemmFp8GroupwiseLinearKernel,
         FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (N, K))),
        ("int8 dyn token x ch", FbgemmInt8LinearKernel, Int8ScaledMMLinearLayerConfig(False, True, True, (N, K))),
        ("w4a16 g128", FbgemmW4A16LinearKernel,
         MPLinearLayerConfig((K, N), (K, N), st.uint4b8, torch.bfloat16, 128, False, False)),
    ]


def main() -> None:
    out_dir = os.environ.get("OUT", ".")
    dev = torch.cuda.get_device_name()
    rows = []
    ws = [torch.randn(N, K, device="cuda", dtype=torch.bfloat16) * 0.05 for _ in range(COPIES)]
    for m in MS:
        xs = [torch.randn(m, K, device="cuda", dtype=torch.bfloat16) for _ in range(COPIES)]
        i = [0]

        def bf16():
            i[0] = (i[0] + 1) % COPIES
            return torch.nn.functional.linear(xs[i[0]], ws[i[0]])
        rows.append({"kernel": "bf16 F.linear", "M": m, "us": triton.testing.do_bench(bf16, return_mode="median") * 1e3})
    for label, kcls, c in configs():
        layers, kerns = [], []
        for j in range(COPIES):
            case = testing.Case(c, 8)
            params, _, _ = testing.make_case_layer(case, "cuda", seed=j)
            layer = qlinear.make_layer(c, params)
            k = kcls.create(c)
            k.process_weights_after_loading(layer)
            layers.append(layer)
            kerns.append(k)
        for m in MS:
            dt = getattr(c, "input_dtype", None) or getattr(c, "act_type", torch.bfloat16)
            xs = [torch.randn(m, K, device="cuda", dtype=dt) for _ in range(COPIES)]
            i = [0]

            def run():
                i[0] = (i[0] + 1) % COPIES
                return kerns[i[0]].apply_weights(layers[i[0]], xs[i[0]])
            run()  # first call outside the timing
            rows.append({"kernel": label, "M": m, "us": triton.testing.do_bench(run, return_mode="median") * 1e3})
    meta = {"device": dev, "torch": torch.__version__, "shape": [N, K], "copies": COPIES}
    with open(os.path.join(out_dir, "fbgemm_bench.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    print(f"\nfbgemm bench on {dev}, torch {torch.__version__}, N=K={N}, median us (do_bench), weights rotated x{COPIES}")
    labels = ["bf16 F.linear"] + [c[0] for c in configs()]
    print(f"{'kernel':<28}" + "".join(f"{'M=' + str(m):>10}" for m in MS))
    for lab in labels:
        vals = {r["M"]: r["us"] for r in rows if r["kernel"] == lab}
        print(f"{lab:<28}" + "".join(f"{vals.get(m, float('nan')):>10.1f}" for m in MS))


if __name__ == "__main__":
    sys.exit(main())
