"""Fused activation quantization (Triton), as plain functions other providers may reuse.

Each call is one Triton launch (dynamic per-tensor FP8: two) and matches ``qlinear.formats`` bit
for bit in convention: FP8 scale = amax / 448 clamped to MIN_SCALE (per-token amax first clamped
to ``scale_ub``), INT8 symmetric scale = amax / 127, asymmetric scale = (max - min) / 255 with
zero point round(-128 - min / s), codes rounded half-to-even. Inputs are 2-D [M, K] with a
contiguous last dimension (other shapes: reshape first); scales come back as fp32 tensors shaped
like ``qlinear.formats``' ([M, 1] per token, [1] per tensor, [M, ceil(K/group)] per group).

Importing this module imports triton.
"""

from __future__ import annotations

import torch

from . import quant_kernels as qk

FP8 = torch.float8_e4m3fn
_ONE_PASS_MAX = 8192  # rows up to this many elements are read once (held in registers)


def _check(x: torch.Tensor) -> torch.Tensor:
    if x.dim() != 2:
        raise ValueError(f"x.shape: expected a 2-D [M, K] tensor, got {tuple(x.shape)}")
    if x.stride(-1) != 1:
        x = x.contiguous()
    return x


def _row_block(k: int) -> tuple[int, bool]:
    b = 1 << max(4, (k - 1).bit_length())
    if b <= _ONE_PASS_MAX:
        return b, True
    return 2048, False


def _row_quant(x, q, mode, ub=None, want_zp=False):
    m, k = x.shape
    s = torch.empty((m, 1), dtype=torch.float32, device=x.device)
    zp = torch.empty((m, 1), dtype=torch.int32, device=x.device) if want_zp else None
    if m:
        block, one = _row_block(k)
        qk.row_quant_kernel[(m,)](x, q, s, zp if zp is not None else s, ub if ub is not None else s, k,
                                  x.stride(0), q.stride(0), MODE=mode, HAS_UB=ub is not None, BLOCK_K=block,
                                  ONE_PASS=one, num_warps=4 if block <= 4096 else 8)
    return s, zp


def quant_fp8_per_token(x: torch.Tensor, scale_ub: torch.Tensor | None = None, out: torch.Tensor | None = None):
    """Dynamic per-token FP8: -> (q e4m3 [M, K], scale fp32 [M, 1])."""
    x = _check(x)
    q = out if out is not None else torch.empty(x.shape, dtype=FP8, device=x.device)
    s, _ = _row_quant(x, q, 0, ub=scale_ub)
    return q, s


def quant_int8_per_token(x: torch.Tensor, symmetric: bool = True, out: torch.Tensor | None = None):
    """Dynamic per-token INT8: -> (q int8 [M, K], scale fp32 [M, 1], zero point int32 [M, 1] or None)."""
    x = _check(x)
    q = out if out is not None else torch.empty(x.shape, dtype=torch.int8, device=x.device)
    s, zp = _row_quant(x, q, 1 if symmetric else 2, want_zp=not symmetric)
    return q, s, zp


def quant_fp8_per_group(x: torch.Tensor, group: int = 128, column_major: bool = False):
    """Dynamic FP8 per 1 x ``group`` block: -> (q e4m3 [M, K], scale fp32 [M, ceil(K/group)]).
    ``column_major`` returns the scale with strides (1, M) (what blockwise ``_scaled_mm`` wants)."""
    x = _check(x)
    if group < 16 or group & (group - 1):
        raise ValueError(f"group: must be a power of two >= 16, got {group}")
    m, k = x.shape
    ng = -(-k // group)
    q = torch.empty(x.shape, dtype=FP8, device=x.device)
    s = torch.empty((ng, m), dtype=torch.float32, device=x.device).t() if column_major else \
        torch.empty((m, ng), dtype=torch.float32, device=x.device)
    if m:
        gpp = min(8, 1 << (ng - 1).bit_length())
        qk.group_quant_kernel[(m, -(-ng // gpp))](x, q, s, k, x.stride(0), q.stride(0), s.stride(0), s.stride(1),
                                                  GROUP=group, GROUPS_PER_PROG=gpp, num_warps=4)
    return q, s


def _tensor_quant(x, q, s, zp, amax, mode, dynamic):
    m, k = x.shape
    if not m:
        return
    rows = max(1, -(-m // 1024))  # at most ~1024 programs: a dynamic scale's amax vector is read per program
    block = min(2048, 1 << max(4, (k - 1).bit_length()))
    qk.tensor_quant_kernel[(-(-m // rows),)](x, q, s, zp if zp is not None else s, amax if amax is not None else s,
                                             m, k, x.stride(0), q.stride(0), rows, MODE=mode, DYNAMIC=dynamic,
                                             BLOCK_K=block, BLOCK_R=1024, num_warps=4)


def quant_fp8_static(x: torch.Tensor, scale: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Static per-tensor FP8 with a given fp32 ``scale`` (1 element): -> q e4m3 [M, K]."""
    x = _check(x)
    if scale.numel() != 1:
        raise ValueError(f"scale: a static per-tensor scale has one element, got shape {tuple(scale.shape)}")
    q = out if out is not None else torch.empty(x.shape, dtype=FP8, device=x.device)
    _tensor_quant(x, q, scale, None, None, 0, False)
    return q


def quant_fp8_per_tensor(x: torch.Tensor):
    """Dynamic per-tensor FP8: -> (q e4m3 [M, K], scale fp32 [1]). Two launches (row amax, quantize)."""
    x = _check(x)
    m, k = x.shape
    q = torch.empty(x.shape, dtype=FP8, device=x.device)
    s = torch.empty((1,), dtype=torch.float32, device=x.device)
    if not m:
        s.fill_(qk.MIN_SCALE)
        return q, s
    amax = torch.empty((m,), dtype=torch.float32, device=x.device)
    qk.row_amax_kernel[(m,)](x, amax, k, x.stride(0), BLOCK_K=min(4096, 1 << max(4, (k - 1).bit_length())), num_warps=4)
    _tensor_quant(x, q, s, None, amax, 0, True)
    return q, s


def quant_int8_static(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor | None = None,
                      out: torch.Tensor | None = None) -> torch.Tensor:
    """Static per-tensor INT8 with ``scale`` (and ``zero_point`` for asymmetric): -> q int8 [M, K]."""
    x = _check(x)
    q = out if out is not None else torch.empty(x.shape, dtype=torch.int8, device=x.device)
    _tensor_quant(x, q, scale, zero_point, None, 2 if zero_point is not None else 1, False)
    return q


__all__ = ["quant_fp8_per_token", "quant_int8_per_token", "quant_fp8_per_group", "quant_fp8_static",
           "quant_fp8_per_tensor", "quant_int8_static"]
