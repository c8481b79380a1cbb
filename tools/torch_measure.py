"""Measure the torch provider: activation quantization eager vs torch.compile'd, and each kernel
end to end (quantize + GEMM + epilogue) against bf16 F.linear, at N = K = 4096.

    python -m tools.torch_measure --device cpu  [--json out.json] [--ms 1,16,128]
    python -m tools.torch_measure --device cuda --json $OUT/torch_measure.json

Compilation happens before timing (warm-up calls), never inside a timed loop. Timing is
``tools/harness.py`` (``qlinear.timing``): medians per call, four inputs rotated; ``--stat min``
reports the minimum instead (robust on a shared, contended CPU box).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from .harness import Timer


def _time_us(timer: Timer, fn, inputs) -> float:
    return timer(lambda i: fn(inputs[i]), len(inputs))


def measure_actquant(timer: Timer, device: str, k: int, ms) -> list[dict]:
    from qlinear_torch import actquant as AQ
    from qlinear_torch import compiled

    rows = []
    fns = [("int8_dynamic_sym", AQ.int8_dynamic_sym), ("int8_dynamic_asym", AQ.int8_dynamic_asym),
           ("fp8_dynamic_token", AQ.fp8_dynamic_token), ("fp8_dynamic_group", AQ.fp8_dynamic_group)]
    os.environ["QLINEAR_TORCH_COMPILE"] = "1"
    for name, fn in fns:
        wrapped = compiled.get(fn)
        t0 = time.perf_counter()
        wrapped(torch.randn(1, k, device=device, dtype=torch.bfloat16))
        wrapped(torch.randn(17, k, device=device, dtype=torch.bfloat16))
        compile_s = time.perf_counter() - t0
        status = compiled.STATUS.get(wrapped.name, "?")
        for m in ms:
            xs = [torch.randn(m, k, device=device, dtype=torch.bfloat16) * 3 for _ in range(4)]
            eager = _time_us(timer, fn, xs)
            # the raw compiled function (the wrapper would run small CPU batches eagerly); its first
            # call per shape class compiles, inside the untimed warm-up calls of the timer
            raw = wrapped.compiled or wrapped
            with torch.no_grad():
                comp = _time_us(timer, raw, xs)
            rows.append(dict(fn=name, m=m, k=k, eager_us=round(eager, 1), compiled_us=round(comp, 1),
                             compile_s=round(compile_s, 1), status=status))
            print(f"  actquant {name:<20} M={m:<5} eager {eager:9.1f} us   compiled {comp:9.1f} us   ({status})", flush=True)
    return rows


def measure_kernels(timer: Timer, device: str, n: int, k: int, ms, compile_modes) -> list[dict]:
    from qlinear import testing
    from qlinear.layers import make_layer
    from qlinear.platform import current_platform
    from qlinear_torch.kernels import KERNELS

    plat = current_platform()
    slow_timer = Timer(device, max_time=0.0, warmup=1, stat=timer.stat)  # a few calls: 0.4 s each
    rows = []
    w = torch.randn(n, k, device=device, dtype=torch.bfloat16)
    for m in ms:
        xs = [torch.randn(m, k, device=device, dtype=torch.bfloat16) for _ in range(4)]
        t = _time_us(timer, lambda x: torch.nn.functional.linear(x, w), xs)
        rows.append(dict(kernel="bf16 F.linear", m=m, n=n, k=k, us=round(t, 1)))
        print(f"  {'bf16 F.linear':<48} M={m:<5} {t:9.1f} us", flush=True)
    for kcls in KERNELS:
        if not kcls.is_supported(plat)[0]:
            continue
        cfg = _config_for(kcls, n, k)
        if cfg is None or not kcls.can_implement(cfg)[0]:
            continue
        case = testing.Case(cfg, 1, with_bias=False)
        params, _, _ = testing.make_case_layer(case, device)
        for mode in compile_modes:
            os.environ["QLINEAR_TORCH_COMPILE"] = mode
            layer = make_layer(cfg, {name: t.clone() for name, t in params.items()})
            kern = kcls.create(cfg)
            kern.process_weights_after_loading(layer)  # compiles here when on (warm-up), not below
            for m in ms:
                slow = kcls.priority < 0
                if slow and m > 1:
                    continue  # CPU FP8 _scaled_mm: ~0.4 s per call at M=1 already
                xs = [torch.randn(m, k, device=device, dtype=torch.bfloat16) for _ in range(4)]
                t = _time_us(slow_timer if slow else timer, lambda x: kern.apply_weights(layer, x), xs)
                label = f"{kcls.__name__} [{'compiled' if mode == '1' else 'eager'}]"
                rows.append(dict(kernel=kcls.__name__, compile=mode == "1", config=cfg.describe(), m=m, n=n, k=k, us=round(t, 1)))
                print(f"  {label:<48} M={m:<5} {t:9.1f} us", flush=True)
    return rows


def _config_for(kcls, n, k):
    import qlinear.quant_key as qk
    from qlinear import FP8ScaledMMLinearLayerConfig, Int8ScaledMMLinearLayerConfig, MPLinearLayerConfig, scalar_types

    fam = kcls.family
    if fam == "int8":
        return Int8ScaledMMLinearLayerConfig(False, True, True, (n, k), torch.bfloat16)
    if fam == "fp8":
        if "PerTensor" in kcls.__name__:
            return FP8ScaledMMLinearLayerConfig(qk.kFp8StaticTensorSym, qk.kFp8DynamicTensorSym, (n, k), torch.bfloat16)
        return FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (n, k), torch.bfloat16)
    if fam == "fp8_block":
        return FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (n, k), torch.bfloat16)
    if fam == "mp":
        if "W8A16" in kcls.__name__:
            return MPLinearLayerConfig((k, n), (k, n), scalar_types.uint8b128, torch.bfloat16, -1, False, False)
        return MPLinearLayerConfig((k, n), (k, n), scalar_types.uint4b8, torch.bfloat16, 128, False, False)
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--k", type=int, default=4096)
    ap.add_argument("--ms", default="1,16,128")
    ap.add_argument("--max-time", type=float, default=0.3, help="seconds of timed calls per point")
    ap.add_argument("--compile", default="0,1", help="compile modes to time kernels in: 0 (eager), 1, or 0,1")
    ap.add_argument("--json")
    ap.add_argument("--stat", choices=("median", "min"), default="median")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (CPU); 0 = leave")
    a = ap.parse_args()
    ms = [int(v) for v in a.ms.split(",")]
    timer = Timer(a.device, max_time=a.max_time, stat=a.stat)
    if a.threads:
        torch.set_num_threads(a.threads)
    name = torch.cuda.get_device_name() if a.device == "cuda" else "cpu"
    print(f"device {name}; torch {torch.__version__}; threads {torch.get_num_threads()}", flush=True)
    res = dict(device=name, torch=torch.__version__, threads=torch.get_num_threads(), stat=a.stat,
               actquant=measure_actquant(timer, a.device, a.k, ms),
               kernels=measure_kernels(timer, a.device, a.n, a.k, ms, a.compile.split(",")))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
