"""GPU micro-benchmark of the sm_90-capable flashinfer kernels against bf16 F.linear (run by gpu_check.sh).

Weights rotated over 6 layer copies (> 50 MB L2), random inputs, triton.testing.do_bench medians in µs;
each kernel is called once (JIT build) before timing. Writes $OUT/flashinfer_bench.json, prints a table."""

from __future__ import annotations

import json
import os

import torch
import triton

import qlinear
from qlinear import quant_key as qk, testing
from qlinear.config import FP8ScaledMMLinearLayerConfig

from qlinear_flashinfer.fp8 import FlashInferFp8ScaledMMLinearKernel
from qlinear_flashinfer.fp8_block import FlashInferFp8BlockScaledDynamicLinearKernel

N = K = 4096
MS = (1, 16, 128, 1024)
COPIES = 6


def main() -> None:
    out_dir = os.environ.get("OUT", ".")
    dev = torch.cuda.get_device_name()
    rows, notes = [], {}
    ws = [torch.randn(N, K, device="cuda", dtype=torch.bfloat16) * 0.05 for _ in range(COPIES)]
    for m in MS:
        xs = [torch.randn(m, K, device="cuda", dtype=torch.bfloat16) for _ in range(COPIES)]
        i = [0]

        def bf16():
            i[0] = (i[0] + 1) % COPIES
            return torch.nn.functional.linear(xs[i[0]], ws[i[0]])
        rows.append({"kernel": "bf16 F.linear", "M": m, "us": triton.testing.do_bench(bf16, return_mode="median") * 1e3})
    cfgs = [("bmm_fp8 per-tensor (static)", FlashInferFp8ScaledMMLinearKernel,
             FP8ScaledMMLinearLayerConfig(qk.kFp8StaticTensorSym, qk.kFp8StaticTensorSym, (N, K))),
            ("fp8 block dynamic", FlashInferFp8BlockScaledDynamicLinearKernel,
             FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (N, K)))]
    for label, kcls, c in cfgs:
        layers, kerns = [], []
        for j in range(COPIES):
            params, _, _ = testing.make_case_layer(testing.Case(c, 8), "cuda", seed=j)
            layer = qlinear.make_layer(c, params)
            k = kcls.create(c)
            k.process_weights_after_loading(layer)
            layers.append(layer)
            kerns.append(k)
        if hasattr(layers[0], "flashinfer_large_m_kernel"):
            notes[label] = f"M>={kcls.SMALL_M} delegated to {layers[0].flashinfer_large_m_kernel}"
        for m in MS:
            xs = [torch.randn(m, K, device="cuda", dtype=torch.bfloat16) for _ in range(COPIES)]
            i = [0]

            def run():
                i[0] = (i[0] + 1) % COPIES
                return kerns[i[0]].apply_weights(layers[i[0]], xs[i[0]])
            run()
            torch.cuda.synchronize()
            rows.append({"kernel": label, "M": m, "us": triton.testing.do_bench(run, return_mode="median") * 1e3})
    with open(os.path.join(out_dir, "flashinfer_bench.json"), "w") as f:
        json.dump({"meta": {"device": dev, "torch": torch.__version__, "shape": [N, K], "copies": COPIES, "notes": notes},
                   "rows": rows}, f, indent=1)
    print(f"\nflashinfer bench on {dev}, torch {torch.__version__}, N=K={N}, median us (do_bench), weights rotated x{COPIES}")
    print(f"{'kernel':<30}" + "".join(f"{'M=' + str(m):>10}" for m in MS))
    for lab in ["bf16 F.linear"] + [c[0] for c in cfgs]:
        vals = {r["M"]: r["us"] for r in rows if r["kernel"] == lab}
        print(f"{lab:<30}" + "".join(f"{vals.get(m, float('nan')):>10.1f}" for m in MS))
    for k, v in notes.items():
        print(f"  note: {k}: {v}")


if __name__ == "__main__":
    main()
