"""Element codes of the small float formats: E2M1 (FP4), E4M3 (FP8), E8M0 (scale exponents).

Decoding is exact (table lookup / bit construction, never ``exp2`` of a float). Encoding rounds to
nearest, ties to even, and saturates to the format's largest finite value (OCP MX behaviour).
"""

from __future__ import annotations

import math

import torch

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0
FP4_MAX = 6.0
E2M1_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0)
# decision points between neighbouring magnitudes, and whether a tie goes up (lower code odd)
_E2M1_EDGES = ((0.25, False), (0.75, True), (1.25, False), (1.75, True), (2.5, False), (3.5, True), (5.0, False))


def e2m1_decode(codes: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """4-bit codes (uint8 0..15, sign in bit 3) -> values."""
    table = torch.tensor(E2M1_VALUES, dtype=dtype, device=codes.device)
    return table[codes.long() & 0xF]


def e2m1_encode(x: torch.Tensor) -> torch.Tensor:
    """Values -> 4-bit codes, round to nearest even, saturating at ±6. NaN is an error upstream."""
    a = x.abs() if x.dtype == torch.float64 else x.abs().float()  # float64 stays: no double rounding
    code = torch.zeros_like(a, dtype=torch.uint8)
    for edge, tie_up in _E2M1_EDGES:
        code += (a >= edge if tie_up else a > edge).to(torch.uint8)
    return code | (torch.signbit(x).to(torch.uint8) << 3)


def pack_fp4(codes: torch.Tensor) -> torch.Tensor:
    """[..., K] codes -> [..., K/2] bytes; element 2i in the low nibble, 2i+1 in the high nibble."""
    if codes.shape[-1] % 2:
        raise ValueError(f"codes.shape: last dimension must be even to pack FP4 pairs, got {tuple(codes.shape)}")
    c = codes.to(torch.uint8)
    return (c[..., 0::2] & 0xF) | ((c[..., 1::2] & 0xF) << 4)


def unpack_fp4(packed: torch.Tensor) -> torch.Tensor:
    """[..., K/2] bytes -> [..., K] codes (inverse of ``pack_fp4``)."""
    p = packed.to(torch.uint8)
    return torch.stack((p & 0xF, p >> 4), dim=-1).reshape(*p.shape[:-1], p.shape[-1] * 2)


def e8m0_decode(codes: torch.Tensor) -> torch.Tensor:
    """E8M0 codes (uint8) -> float32 2**(code-127), exactly; code 255 is NaN."""
    c = codes.to(torch.int32)
    bits = torch.where(c == 0, torch.full_like(c, 1 << 22), c << 23)  # code 0 is 2^-127, an fp32 subnormal
    out = bits.view(torch.float32)
    return torch.where(c == 255, torch.full_like(out, float("nan")), out)


def mx_weight_scales(codes: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """A loaded MX ``weight_scale`` (E8M0 codes [N, K/32]) -> float32 scales, exactly; a wrong shape or
    a NaN code (255) is refused naming the field (a kernel would otherwise compute with a NaN scale)."""
    if tuple(codes.shape) != (n, k // 32):
        raise ValueError(f"weight_scale.shape: expected ({n}, {k // 32}), got {tuple(codes.shape)}")
    if bool((codes.to(torch.int32) == 255).any()):
        raise ValueError("weight_scale: E8M0 code 255 (NaN) in a weight scale")
    return e8m0_decode(codes)


def e8m0_from_exponent(e: torch.Tensor) -> torch.Tensor:
    """Unbiased integer exponents -> E8M0 codes, clamped to the finite range [-127, 127]."""
    return (e.clamp(-127, 127) + 127).to(torch.uint8)


def floor_log2(x: torch.Tensor) -> torch.Tensor:
    """floor(log2(x)) for x > 0 exactly (read off the fp32 exponent bits); 0 maps to -127."""
    if x.dtype == torch.float64:  # a cast to fp32 could round up to the next power of two
        _, ex = torch.frexp(x)
        return torch.where(x == 0, torch.full_like(ex, -127), ex - 1).to(torch.int32)
    xf = x.float()
    bits = xf.view(torch.int32)
    e = ((bits >> 23) & 0xFF) - 127
    # subnormals: their exponent field is 0; use frexp there (rare, scale-of-zero blocks)
    m, ex = torch.frexp(xf)
    e = torch.where((bits >> 23) & 0xFF == 0, ex.to(torch.int32) - 1, e)
    return torch.where(xf == 0, torch.full_like(e, -127), e)


def e4m3_decode(t: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """FP8 E4M3 (torch dtype or raw uint8 codes) -> values, exactly."""
    if t.dtype == torch.uint8:
        t = t.view(FP8)
    return t.to(dtype)


def to_e4m3(x: torch.Tensor) -> torch.Tensor:
    """Values -> FP8 E4M3, saturating at ±448 (the plain cast would give NaN above 464)."""
    return x.float().clamp(-FP8_MAX, FP8_MAX).to(FP8)


# GPU kernels (marlin's tile and decode kernels, cutlass's FP4 GEMM) place a float code's bits into the
# 16-bit type without arithmetic (sign to bit 15, exponent|mantissa to the bottom of the type's exponent
# field), which reads as value * 2^-bias: bias = the type's exponent bias minus the code's.
FP_PLACEMENT_BIAS = {(torch.float16, 4): 14, (torch.float16, 8): 8, (torch.bfloat16, 4): 126, (torch.bfloat16, 8): 120}
_MAX_EXP = {torch.float16: 15, torch.bfloat16: 127}  # keep scales and weights below 2^this
_CODE_MAX = {4: 6.0, 8: 448.0}  # largest E2M1 / E4M3 magnitude


def code_scales(s32: torch.Tensor, dtype: torch.dtype, bits: int) -> tuple[torch.Tensor, float]:
    """fp32 group scales -> (stored scales in ``dtype``, power-of-two factor for the fp32 sums per column).

    A weight is made by one 16-bit multiply of the placed code (value * 2^-bias) by the stored scale
    s * 2^a, so it is value * s * 2^(a - bias), rounded once; the factor 2^(bias - a) undoes that on
    the fp32 sums (exact). ``a`` is the largest shift that keeps both the stored scales and the
    weights below 2^15 (float16) or 2^127 (bfloat16): weights then sit as far above the 16-bit
    subnormals as they can, and E4M3 / E8M0 scales (NVFP4, MX) stay exact."""
    bias, top = FP_PLACEMENT_BIAS[(dtype, bits)], _MAX_EXP[dtype]
    s64 = s32.double()
    amax = float(s64.abs().max()) if s64.numel() else 0.0
    if not math.isfinite(amax):
        raise ValueError("weight scales: contain Inf/NaN")
    if amax == 0.0:
        return s32.to(dtype), 1.0
    a = min(top - math.ceil(math.log2(amax * _CODE_MAX[bits])) + bias, top - math.ceil(math.log2(amax)))
    stored = (s64 * 2.0 ** a).to(dtype)
    lost = (stored == 0) & (s64 != 0)
    if bool(lost.any()):
        raise ValueError(f"weight scales: span more than {dtype} can hold (smallest {float(s64[s64 != 0].abs().min()):.3g}, "
                         f"largest {amax:.3g})")
    return stored, 2.0 ** (bias - a)
