"""Gates and small helpers shared by the torch kernels."""

from __future__ import annotations

import functools

import torch

from qlinear.families import out_dtype  # noqa: F401 - the kernels' output dtype rule, imported from here
from qlinear.platform import Platform, resolve_platform

# Priorities (emulation is 0). CPU: the ATen int kernels rank above emulation; CPU `_scaled_mm` FP8
# is emulated by torch (0.46 s at M=1, 4096^2) and ranks below it. CUDA, from the H100 run in
# docs/gpu-results.md: the triton provider's FP8 / INT8 / block-FP8 kernels beat these under CUDA
# graphs at every M measured (e.g. FP8 per-token 4096^2 M=16: 13.7 vs 18.5 us) and by far eager
# (two launches vs a chain of torch ops), so these rank just below triton (20); tinygemm W4A16 is the
# fastest W4A16 at M=1 (7.4 us) but 10x slower than triton at M=1024, so it ranks below triton too.
PRIO_CPU = 20
PRIO_CPU_SLOW = -10
PRIO_CUDA = 19
# LinearKernel.table_version of the CUDA W8A8 kernels. 1: their activation quantization and
# epilogue chains run eager on CUDA (compiled.py); rows timed while they ran compiled were up to
# 2.4x fast and are ignored.
CUDA_W8A8_TABLE_VERSION = 1
PRIO_CUDA_FALLBACK = 17
PRIO_CUDA_TINYGEMM = 18


def has_aten_op(name: str) -> bool:
    return hasattr(torch.ops.aten, name)


def gate_cpu(p: "Platform | int | None", *ops: str):
    """(ok, reason) for a CPU kernel needing ``ops``."""
    plat = resolve_platform(p)
    if not plat.is_cpu():
        return False, f"CPU kernel; platform is {plat.kind}"
    for op in ops:
        if not has_aten_op(op):
            return False, f"torch {torch.__version__} has no torch.ops.aten.{op}"
    return True, None


def gate_cuda(p: "Platform | int | None", min_cc: int, *ops: str, exact_cc: int | None = None):
    """(ok, reason) for a CUDA kernel needing compute capability ``min_cc`` and ``ops``. On a real
    (not simulated) platform the installed torch must also be a CUDA build that sees a device."""
    plat = resolve_platform(p)
    if not plat.is_cuda():
        return False, f"CUDA kernel; platform is {plat.kind}" + (" (ROCm is not verified for it)" if plat.is_rocm() else "")
    cc = plat.capability
    if cc is None or cc < min_cc:
        return False, f"needs CUDA cc>={min_cc}, have {cc}"
    if exact_cc is not None and cc // 10 != exact_cc // 10:
        return False, f"needs CUDA cc {exact_cc // 10}.x (SM{exact_cc}), have {cc}"
    for op in ops:
        if not has_aten_op(op):
            return False, f"torch {torch.__version__} has no torch.ops.aten.{op}"
    if not plat.simulated and not _cuda_usable():
        return False, f"torch {torch.__version__} sees no CUDA device"
    return True, None


@functools.lru_cache(maxsize=1)
def _cuda_usable() -> bool:
    return torch.version.cuda is not None and torch.cuda.is_available()


def as_2d(x: torch.Tensor) -> torch.Tensor:
    x2 = x.reshape(-1, x.shape[-1])
    return x2 if x2.is_contiguous() else x2.contiguous()


def round_up(a: int, b: int) -> int:
    return -(-a // b) * b


def relay_w8(kernel, layer, w_name: str, s_name: str, dtype: torch.dtype, n: int, k: int) -> torch.Tensor:
    """The W8A8 kernels' load-time re-lay, on the layer: the as-loaded weight [K, N] (checked) becomes
    the transposed view of a row-major [N, K] zero-padded to ``kernel.ALIGN`` (the column-major mat2
    _scaled_mm needs; _int_mm's fast B layout); sets ``kernel.n_pad`` / ``kernel.k_pad``. Returns the
    weight scale flattened to fp32 [1] or [N + n_pad] (padded columns get scale 1)."""
    import torch.nn.functional as F

    w = getattr(layer, w_name)
    if tuple(w.shape) != (k, n) or w.dtype != dtype:
        raise ValueError(f"{w_name}: expected {str(dtype).removeprefix('torch.')} [K={k}, N={n}], "
                         f"got {w.dtype} {tuple(w.shape)}")
    w_nk = w.t().contiguous()
    kernel.n_pad, kernel.k_pad = round_up(n, kernel.ALIGN) - n, round_up(k, kernel.ALIGN) - k
    if kernel.n_pad or kernel.k_pad:  # through uint8: F.pad has no float8 kernel
        w_nk = F.pad(w_nk.view(torch.uint8), (0, kernel.k_pad, 0, kernel.n_pad)).view(dtype)
    kernel.replace_parameter(layer, w_name, w_nk.t())
    ws = getattr(layer, s_name).float().reshape(-1)
    if ws.numel() not in (1, n):
        raise ValueError(f"{s_name}: expected 1 or N={n} scales, got shape {tuple(getattr(layer, s_name).shape)}")
    if ws.numel() == n and kernel.n_pad:
        ws = F.pad(ws, (0, kernel.n_pad), value=1.0)
    return ws


def param(layer, name: str | None):
    """``layer.<name>`` as a plain tensor (or None). Compiled functions must get plain tensors:
    dynamo specializes Parameters' shapes, which would recompile per layer shape."""
    if name is None:
        return None
    t = getattr(layer, name, None)
    return t.data if isinstance(t, torch.nn.Parameter) else t
