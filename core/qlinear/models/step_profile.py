"""Where a decode step's device time goes: the demo's ``--profile``.

Runs the step under ``torch.profiler`` (CUPTI records the kernels a CUDA graph replay launches),
and sums each kernel's device time per step. Kernels are sorted into three kinds by name, so the
remainder that quantized weights do not shrink (attention, norms, rotary, residuals, the KV-cache
update, sampling) is measured, not estimated:

- ``gemm``: the linear layers' kernels (cuBLAS / CUTLASS / nvJet GEMMs and GEMVs, marlin's
  ``mp_*`` kernels and its act-order gather, triton and torch scaled-mm kernels);
- ``attention``: SDPA's kernels (flash, memory-efficient, cuDNN) and softmax;
- ``other``: everything else (Inductor's fused ``triton_*`` kernels, copies, reductions).
"""

from __future__ import annotations

import re
from typing import Callable

import torch

_GEMM = re.compile(r"gemm|gemv|nvjet|xmma|cutlass|cublas|^mp_|marlin|gather_cols|scaled_mm|matmul|_mm_|w4a16|"
                   r"wgmma|splitk", re.I)
_ATTN = re.compile(r"flash|fmha|attention|attn|sdpa|softmax|cudnn", re.I)


def kind_of(kernel_name: str) -> str:
    """``gemm``, ``attention`` or ``other`` for a kernel's (demangled) name."""
    if _ATTN.search(kernel_name):
        return "attention"
    if _GEMM.search(kernel_name):
        return "gemm"
    return "other"


def profile_steps(run: Callable[[], None], steps: int, device: torch.device) -> dict:
    """Run ``run`` (one decode step, e.g. a graph replay) ``steps`` times under the profiler.
    Returns {kinds: {kind: µs per step}, kernels: [(name, kind, µs per step, launches per step)],
    total_us, steps}, kernels sorted by time."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize(device)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            run()
        torch.cuda.synchronize(device)
    rows = []
    for evt in prof.key_averages():
        if evt.device_type != torch.autograd.DeviceType.CUDA:  # kernels (and memcpys) only
            continue
        rows.append((evt.key, kind_of(evt.key), evt.self_device_time_total / steps, evt.count / steps))
    rows.sort(key=lambda r: -r[2])
    kinds = {k: 0.0 for k in ("gemm", "attention", "other")}
    for _, kind, us, _ in rows:
        kinds[kind] += us
    return {"kinds": kinds, "kernels": rows, "total_us": sum(kinds.values()), "steps": steps}


def format_profile(p: dict, step_us: float, top: int = 12) -> str:
    """A few lines: the kinds' µs per step and share, the gap to the measured step time (launch and
    dependency gaps between kernels), and the top kernels."""
    total = p["total_us"]
    lines = [f"  device time per step: {total:.0f} µs in kernels, step {step_us:.0f} µs "
             f"(step minus kernels: {step_us - total:.0f} µs of gaps; "
             "negative where kernels overlap, as marlin's do under programmatic dependent launch)"]
    lines.append("  " + ", ".join(f"{k} {v:.0f} µs ({100 * v / max(total, 1e-9):.0f}%)" for k, v in p["kinds"].items()))
    for name, kind, us, n in p["kernels"][:top]:
        short = name if len(name) <= 90 else name[:87] + "..."
        lines.append(f"    {us:8.1f} µs  {n:5.1f}x  {kind:9s}  {short}")
    return "\n".join(lines)
