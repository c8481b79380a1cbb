"""Time the zentorch kernels against bf16 F.linear on this CPU (K=N=4096 by default).

    QLINEAR_ZENTORCH_ANY_CPU=1 python providers/zentorch/bench.py [--json out.json] [--copies 6]
        [--threads 1 --cpu-time]   # on a loaded shared machine

Weights are rotated over ``--copies`` layers (6 x 4096x4096 exceeds the L3), each call is timed on
its own, and the median over ``--rounds`` passes is reported in microseconds. Besides the two
kernels it times the raw ops the kernels chose between (non-prepacked W8A8, bf16 vs fp32 W4A16
scales) and zentorch's W4A8 path (not shipped: see README.md), so the choices can be re-checked.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from qlinear.config import Int8ScaledMMLinearLayerConfig, MPLinearLayerConfig
from qlinear.layers import make_layer, quantize_layer_params
from qlinear.scalar_type import scalar_types as st
from qlinear_zentorch import gate
from qlinear_zentorch.int8 import ZentorchInt8ScaledMMLinearKernel
from qlinear_zentorch.mp import ZentorchWNA16LinearKernel


CLOCK = time.perf_counter


def _time(fn, copies: int, rounds: int) -> float:
    for i in range(copies):  # warm-up: first-call reorders / caches out of the timings
        fn(i)
    ts = []
    for _ in range(rounds):
        for i in range(copies):
            t = CLOCK()
            fn(i)
            ts.append(CLOCK() - t)
    return statistics.median(ts) * 1e6


def _layers(kernel_cls, c, copies, gen):
    out = []
    for _ in range(copies):
        n, k = c.shape_nk
        layer = make_layer(c, quantize_layer_params(c, torch.randn(n, k, generator=gen) * 0.05))
        kern = kernel_cls.create(c)
        kern.process_weights_after_loading(layer)
        out.append((kern, layer))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=4096)
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--ms", default="1,8,32,128")
    ap.add_argument("--copies", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time the calling thread's CPU time instead of wall time (needs --threads 1): "
                         "immune to other processes preempting us on a shared, loaded machine")
    a = ap.parse_args()
    global CLOCK
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.cpu_time:
        if torch.get_num_threads() != 1:
            raise SystemExit("--cpu-time needs --threads 1 (other threads' work would not be counted)")
        CLOCK = time.thread_time
    ok, why = ZentorchWNA16LinearKernel.is_supported()
    if not ok:
        raise SystemExit(f"zentorch kernels unavailable here: {why}")
    K, N, C = a.k, a.n, a.copies
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
        r["bf16 F.linear"] = _time(lambda i: torch.nn.functional.linear(x, wbf[i]), C, a.rounds)
        r["zentorch W8A8 (kernel, prepacked)"] = _time(lambda i: i8[i][0].apply(i8[i][1], x), C, a.rounds)
        r["zentorch W8A8 raw op, not prepacked"] = _time(lambda i: dq(x, raw8[i], s8), C, a.rounds)
        r["zentorch W4A16 g128 (kernel, fp32 scales)"] = _time(lambda i: w4[i][0].apply(w4[i][1], x), C, a.rounds)
        r["zentorch W4A16 g128 raw op, bf16 scales"] = _time(
            lambda i: woq(x, w4[i][1].weight_packed.t(), s4_bf16[i], None, None), C, a.rounds)
        r["torch _weight_int4pack_mm_for_cpu W4A16 g128"] = _time(
            lambda i: torch._weight_int4pack_mm_for_cpu(x, t4[i], 128, t4_sz), C, a.rounds)
        r["torch _weight_int8pack_mm W8A16"] = _time(lambda i: torch._weight_int8pack_mm(x, raw8[i], s8_bf16), C, a.rounds)
        r["zentorch W4A8 g128 (dynamic_qlinear, s4)"] = _time(
            lambda i: dq(x, w4[i][1].weight_packed, w4[i][1].weight_scale), C, a.rounds)
        rows.append(r)
        print(json.dumps({k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items()}), flush=True)
    meta = {"cpu": platform.processor() or "", "threads": torch.get_num_threads(), "torch": torch.__version__,
            "zentorch": getattr(gate.load_zentorch()[0], "__version__", "?"), "K": K, "N": N, "copies": C,
            "rounds": a.rounds, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
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
