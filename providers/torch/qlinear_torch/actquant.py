"""Activation quantization for the torch kernels: INT8 (symmetric / asymmetric, dynamic per token
or static per tensor) and FP8 E4M3 (per tensor, per token, 1 x 128 groups).

Each is a plain function of tensors, numerically the reference's (``qlinear.formats``): scale from
amax in float32, divide, round (INT8) or saturate-and-cast (FP8). In eager mode that is a chain of
5-8 small ops, each a pass over x; ``torch.compile`` fuses the chain into one or two loops. So every
function is called through ``compiled.get(fn)``: compiled when ``QLINEAR_TORCH_COMPILE`` says
so (see ``compiled.py``), eager otherwise, and eager for good (with the reason kept for
``doctor``) if compiling fails.
"""

from __future__ import annotations

import torch

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0
MIN_FP8_SCALE = 1.0 / (FP8_MAX * 512.0)  # qlinear.formats.fp8.MIN_SCALE: an all-zero row stays finite
MIN_INT8_SCALE = 1e-10  # qlinear.formats.int8's clamp

# ---- the eager definitions (also the bodies torch.compile traces) ------------------------------


def int8_dynamic_sym(x: torch.Tensor):
    """x [M, K] -> (int8 q [M, K], fp32 scale [M, 1]); x ≈ q * s, s = amax / 127 per row."""
    xf = x.float()
    s = (xf.abs().amax(-1, keepdim=True) / 127.0).clamp(min=MIN_INT8_SCALE)
    return torch.round(xf / s).clamp(-128, 127).to(torch.int8), s


def int8_dynamic_asym(x: torch.Tensor):
    """x [M, K] -> (int8 q, fp32 scale [M, 1], int32 zero point [M, 1]); x ≈ (q - zp) * s."""
    xf = x.float()
    lo = xf.amin(-1, keepdim=True).clamp(max=0)
    hi = xf.amax(-1, keepdim=True).clamp(min=0)
    s = ((hi - lo) / 255.0).clamp(min=MIN_INT8_SCALE)
    zp = torch.round(-128 - lo / s).clamp(-128, 127)
    q = (torch.round(xf / s) + zp).clamp(-128, 127).to(torch.int8)
    return q, s, zp.to(torch.int32)


def int8_static(x: torch.Tensor, s: torch.Tensor, zp: torch.Tensor | None = None):
    """x [M, K] with a static per-tensor scale (and zero point) -> int8 q."""
    q = torch.round(x.float() / s)
    if zp is not None:
        q = q + zp
    return q.clamp(-128, 127).to(torch.int8)


def fp8_static(x: torch.Tensor, s: torch.Tensor):
    """x [M, K] / static scale -> e4m3, saturating (a static scale can be exceeded)."""
    return (x.float() / s).clamp(-FP8_MAX, FP8_MAX).to(FP8)


def fp8_dynamic_tensor(x: torch.Tensor):
    """-> (e4m3 q, fp32 scale [1]); one scale for the whole tensor."""
    xf = x.float()
    s = (xf.abs().amax() / FP8_MAX).clamp(min=MIN_FP8_SCALE).reshape(1)
    return (xf / s).clamp(-FP8_MAX, FP8_MAX).to(FP8), s


def fp8_dynamic_token(x: torch.Tensor, ub: torch.Tensor | None = None):
    """-> (e4m3 q, fp32 scale [M, 1]); per-row amax, clamped by ``ub`` (input_scale_ub) if given."""
    xf = x.float()
    amax = xf.abs().amax(-1, keepdim=True)
    if ub is not None:
        amax = amax.clamp(max=ub)
    s = (amax / FP8_MAX).clamp(min=MIN_FP8_SCALE)
    return (xf / s).clamp(-FP8_MAX, FP8_MAX).to(FP8), s


def fp8_dynamic_group(x: torch.Tensor, group: int = 128):
    """x [M, K] with K a multiple of ``group`` (callers pad) -> (e4m3 q [M, K], fp32 s [M, K/group])."""
    m, k = x.shape
    xg = x.float().reshape(m, k // group, group)
    s = (xg.abs().amax(-1, keepdim=True) / FP8_MAX).clamp(min=MIN_FP8_SCALE)
    q = (xg / s).clamp(-FP8_MAX, FP8_MAX).to(FP8).reshape(m, k)
    return q, s.reshape(m, k // group)
