"""Time the zentorch kernels against bf16 F.linear on this CPU (K=N=4096 by default).

    QLINEAR_ZENTORCH_ANY_CPU=1 python -m tools.zentorch_bench [--json out.json] [--copies 6]
        [--threads 1 --cpu-time]   # on a loaded shared machine

Weights are rotated over ``--copies`` layers (6 x 4096x4096 exceeds the L3); timing is
``tools/harness.py`` (``qlinear.timing``: each call timed on its own, after a warmup, for
``--max-time`` seconds per op), the median reported in microseconds. Besides the two
kernels it times the raw ops the kernels chose between (non-prepacked W8A8, bf16 vs fp32 W4A16
scales) and zentorch's W4A8 path (not shipped: see README.md), so the choices can be re-checked.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from qlinear.config import Int8ScaledMMLinearLayerConfig, MPLinearLayerConfig
from qlinear.scalar_type import scalar_types as st
from qlinear_zentorch import gate
from qlinear_zentorch.int8 import ZentorchInt8ScaledMMLinearKernel
from qlinear_zentorch.mp import ZentorchWNA16LinearKernel

from .harness import Timer, make_layers


def _layers(kernel_cls, c, copies, gen):
    n, k = c.shape_nk
    _, layers, kernels = make_layers(kernel_cls, c, torch.randn(n, k, generator=gen) * 0.05, copies)
    return list(zip(kernels, layers))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=4096)
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--ms", default="1,8,32,128")
    ap.add_argument("--copies", type=int, default=6)
    ap.add_argument("--max-time", type=float, default=1.0, help="seconds of timed calls per op")
    ap.add_argument("--json", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time the calling thread's CPU time instead of wall time (needs --threads 1): "
                         "immune to other processes preempting us on a shared, loaded machine")
    a = ap.parse_args()
    clock = time.perf_counter
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.cpu_time:
        if torch.get_num_threads() != 1:
            raise SystemExit("--cpu-time needs --threads 1 (other threads' work would not be counted)")
        clock = time.thread_time
    ok, why = ZentorchWNA16LinearKernel.is_supported()
    if not ok:
        raise SystemExit(f"zentorch kernels unavailable here: {why}")
    K, N, C = a.k, a.n, a.copies
    timer = Timer("cpu", max_time=a.max_time, clock=clock)
    gen = torch.Generator().manual_seed(0)
    i8 = _layers(ZentorchInt8ScaledMMLinearKernel, Int8ScaledMMLinearLayerConfig(False, True, True, (N, K), torch.bfloat16), C, gen)
    w4 = _layers(ZentorchWNA16LinearKernel, MPLinearLayerConfig((K, N), (K, N), st.uint4b8, torch.bfloat16, 128, False, False), C, gen)
    wbf = [torch.randn(N, K, generator=gen).bfloat16() for _ in range(C)]
    dq, woq = gate.op("zentorch_dynamic_qlinear"), gate.op("zentorch_woq_linear")
    raw8 = [torch.randint(-127, 128, (N, K), generator=gen, dtype=torch.int8) for _ in range(C)]  # not prepacked
    s8 = torch.rand(N, generator=gen) * 1e-3
    s4_bf16 = [layer.weight_scale.data.bfloat16() for _, layer in w4]
    # the torch provider's CPU ops on the same shapes, for the priority comparison (random codes)
    t4 = [torch._convert_weight_to_int4pack_for_cpu(torch.randint(0, 16, (N, K), generator=gen, dtype=torch.int32), 2)
          for _ in range(C)]
    t4_sz = torch.rand(K // 128, N, 2, generator=gen).bfloat16()
    s8_bf16 = s8.bfloat16()
    rows = []
    for m in [int(v) for v in a.ms.split(",")]:
        x = torch.randn(m, K, generator=gen).bfloat16()
        r = {"M": m}
        r["bf16 F.linear"] = timer(lambda i: torch.nn.functional.linear(x, wbf[i]), C)
        r["zentorch W8A8 (kernel, prepacked)"] = timer(lambda i: i8[i][0].apply(i8[i][1], x), C)
        r["zentorch W8A8 raw op, not prepacked"] = timer(lambda i: dq(x, raw8[i], s8), C)
        r["zentorch W4A16 g128 (kernel, fp32 scales)"] = timer(lambda i: w4[i][0].apply(w4[i][1], x), C)
        r["zentorch W4A16 g128 raw op, bf16 scales"] = timer(
            lambda i: woq(x, w4[i][1].weight_packed.t(), s4_bf16[i], None, None), C)
        r["torch _weight_int4pack_mm_for_cpu W4A16 g128"] = timer(
            lambda i: torch._weight_int4pack_mm_for_cpu(x, t4[i], 128, t4_sz), C)
        r["torch _weight_int8pack_mm W8A16"] = timer(lambda i: torch._weight_int8pack_mm(x, raw8[i], s8_bf16), C)
        r["zentorch W4A8 g128 (dynamic_qlinear, s4)"] = timer(
            lambda i: dq(x, w4[i][1].weight_packed, w4[i][1].weight_scale), C)
        rows.append(r)
        print(json.dumps({k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items()}), flush=True)
    meta = {"cpu": platform.processor() or "", "threads": torch.get_num_threads(), "torch": torch.__version__,
            "zentorch": getattr(gate.load_zentorch()[0], "__version__", "?"), "K": K, "N": N, "copies": C,
            "max_time_s": a.max_time, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "loadavg": os.getloadavg()[0],
            "unit": "us (median, " + ("calling thread's CPU time" if a.cpu_time else "wall") + ")"}
    try:
        with open("/proc/cpuinfo") as f:
            meta["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(json.dumps(meta))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
