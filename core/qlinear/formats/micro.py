"""Block-scaled ("microscaling") formats: NVFP4, MXFP4, MXFP8.

NVFP4: E2M1 elements, one E4M3 scale per 16 elements, and an fp32 global scale
(vLLM / compressed-tensors convention: ``global_scale = 448 * 6 / amax``; value = e2m1 * s / global).
MXFP4 / MXFP8 (OCP MX v1.0): E2M1 / E4M3 elements, one E8M0 power-of-two scale per 32 elements,
``scale = 2 ** (floor(log2(amax)) - emax_elem)``.
"""

from __future__ import annotations

import torch

from .codes import FP4_MAX, FP8_MAX, e2m1_decode, e2m1_encode, e4m3_decode, e8m0_decode, e8m0_from_exponent, floor_log2, pack_fp4, to_e4m3, unpack_fp4

NVFP4_BLOCK = 16
MX_BLOCK = 32
_EMAX = {"fp4": 2, "fp8": 8}  # largest exponent of E2M1 (6 = 1.5 * 2^2) and E4M3 (448 = 1.75 * 2^8)


def _check_scale(scale: torch.Tensor, v: torch.Tensor) -> None:
    """One scale per block: a broadcastable but wrong shape would silently give wrong numbers."""
    if tuple(scale.shape) != tuple(v.shape[:-1]):
        raise ValueError(f"scale.shape: expected {tuple(v.shape[:-1])} (one per {v.shape[-1]}-element block), got {tuple(scale.shape)}")


def _blocks(x: torch.Tensor, block: int) -> torch.Tensor:
    if x.shape[-1] % block:
        raise ValueError(f"shape: last dimension {x.shape[-1]} must be a multiple of the {block}-element block")
    return x.reshape(*x.shape[:-1], x.shape[-1] // block, block)


# ---- NVFP4 -------------------------------------------------------------------------------------
def nvfp4_global_scale(amax: torch.Tensor | float) -> torch.Tensor:
    a = torch.as_tensor(amax, dtype=torch.float32).clamp(min=1e-12)
    return (FP8_MAX * FP4_MAX / a).reshape(())


def quantize_nvfp4(x: torch.Tensor, global_scale: torch.Tensor | None = None):
    """x [..., K] -> (packed uint8 [..., K/2], E4M3 block scales [..., K/16], fp32 global scale)."""
    xf = x.float()
    gs = nvfp4_global_scale(xf.abs().amax()) if global_scale is None else global_scale.float().reshape(())
    b = _blocks(xf, NVFP4_BLOCK)
    s = to_e4m3(b.abs().amax(-1) / FP4_MAX * gs)  # [..., K/16]
    sf = s.float()
    inv = torch.where(sf > 0, gs / sf, torch.zeros_like(sf))
    codes = e2m1_encode((b * inv[..., None]).clamp(-FP4_MAX, FP4_MAX)).reshape(xf.shape)
    return pack_fp4(codes), s, gs


def dequantize_nvfp4(packed: torch.Tensor, scale: torch.Tensor, global_scale: torch.Tensor,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    v = _blocks(e2m1_decode(unpack_fp4(packed), dtype), NVFP4_BLOCK)
    _check_scale(scale, v)
    s = e4m3_decode(scale, dtype) / global_scale.to(dtype)
    return (v * s[..., None]).reshape(*packed.shape[:-1], packed.shape[-1] * 2)


# ---- MX (OCP) ------------------------------------------------------------------------------------
def mx_scale_codes(b: torch.Tensor, elem: str) -> torch.Tensor:
    """E8M0 scale code per block of ``b`` [..., nblocks, 32]."""
    return e8m0_from_exponent(floor_log2(b.abs().amax(-1)) - _EMAX[elem])


def quantize_mxfp4(x: torch.Tensor):
    """x [..., K] -> (packed uint8 [..., K/2], E8M0 codes uint8 [..., K/32])."""
    b = _blocks(x.float(), MX_BLOCK)
    sc = mx_scale_codes(b, "fp4")
    codes = e2m1_encode((b / e8m0_decode(sc)[..., None]).clamp(-FP4_MAX, FP4_MAX)).reshape(x.shape)
    return pack_fp4(codes), sc


def dequantize_mxfp4(packed: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    v = _blocks(e2m1_decode(unpack_fp4(packed), dtype), MX_BLOCK)
    _check_scale(scale, v)
    return (v * e8m0_decode(scale).to(dtype)[..., None]).reshape(*packed.shape[:-1], packed.shape[-1] * 2)


def quantize_mxfp8(x: torch.Tensor):
    """x [..., K] -> (E4M3 [..., K], E8M0 codes uint8 [..., K/32])."""
    b = _blocks(x.float(), MX_BLOCK)
    sc = mx_scale_codes(b, "fp8")
    q = to_e4m3(b / e8m0_decode(sc)[..., None]).reshape(x.shape)
    return q, sc


def dequantize_mxfp8(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    v = _blocks(e4m3_decode(q, dtype), MX_BLOCK)
    _check_scale(scale, v)
    return (v * e8m0_decode(scale).to(dtype)[..., None]).reshape(q.shape)


def qdq(x: torch.Tensor, fmt: str, global_scale: torch.Tensor | None = None) -> torch.Tensor:
    """Quantize then dequantize an activation in ``fmt`` (nvfp4 / mxfp4 / mxfp8), in float32."""
    if fmt == "nvfp4":
        p, s, gs = quantize_nvfp4(x, global_scale)
        return dequantize_nvfp4(p, s, gs)
    if fmt == "mxfp4":
        return dequantize_mxfp4(*quantize_mxfp4(x))
    if fmt == "mxfp8":
        return dequantize_mxfp8(*quantize_mxfp8(x))
    raise ValueError(f"fmt: {fmt!r} is not nvfp4, mxfp4 or mxfp8")
