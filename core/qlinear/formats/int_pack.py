"""GPTQ / AWQ integer packing in the compressed-tensors layout, and wNa16 quantization.

``weight_packed`` is int32 [N, K*bits/32], packed along K (code k of row n sits in word k // pf at
bit (k % pf) * bits). GPTQ types carry a bias (uint4b8 stores q + 8). ``weight_zero_point`` is
int32 [N*bits/32, G] packed along N. ``weight_g_idx`` [K] maps input channel -> group (act order).
"""

from __future__ import annotations

import torch

from ..scalar_type import ScalarType


def _check_bits(bits: int) -> None:
    if not isinstance(bits, int) or bits <= 0 or 32 % bits:
        raise ValueError(f"bits: {bits!r} does not divide 32 (codes pack whole into int32 words)")


def pack_along(codes: torch.Tensor, bits: int, dim: int) -> torch.Tensor:
    """Unsigned codes (< 2**bits) -> int32 words, ``32 // bits`` codes per word along ``dim``."""
    _check_bits(bits)
    pf = 32 // bits
    c = codes.movedim(dim, -1).to(torch.int64)
    if c.shape[-1] % pf:
        raise ValueError(f"codes.shape: dimension {dim} ({c.shape[-1]}) must be a multiple of {pf} to pack {bits}-bit codes")
    if c.numel() and (int(c.min()) < 0 or int(c.max()) >= (1 << bits)):
        raise ValueError(f"codes: values must lie in [0, {(1 << bits) - 1}] to pack as {bits}-bit")
    c = c.reshape(*c.shape[:-1], c.shape[-1] // pf, pf)
    shifts = torch.arange(pf, device=c.device, dtype=torch.int64) * bits
    words = (c << shifts).sum(-1)
    words = torch.where(words >= (1 << 31), words - (1 << 32), words)  # to signed int32
    return words.to(torch.int32).movedim(-1, dim).contiguous()


def unpack_along(words: torch.Tensor, bits: int, dim: int) -> torch.Tensor:
    """Inverse of ``pack_along``: int32 words -> unsigned codes (int32) along ``dim``."""
    _check_bits(bits)
    pf = 32 // bits
    w = words.movedim(dim, -1).to(torch.int64) & 0xFFFFFFFF
    shifts = torch.arange(pf, device=w.device, dtype=torch.int64) * bits
    c = (w.unsqueeze(-1) >> shifts) & ((1 << bits) - 1)
    return c.reshape(*w.shape[:-1], w.shape[-1] * pf).to(torch.int32).movedim(-1, dim).contiguous()


def default_g_idx(k: int, group_size: int, device=None) -> torch.Tensor:
    return (torch.arange(k, device=device) // group_size).to(torch.int32)


def act_order_g_idx(k: int, group_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A g_idx as GPTQ act-order makes it: channels visited in a permuted order, grouped by visit."""
    perm = torch.randperm(k, generator=generator)
    g = torch.empty(k, dtype=torch.int32)
    g[perm] = (torch.arange(k) // group_size).to(torch.int32)
    return g


def quantize_wna16(w: torch.Tensor, weight_type: ScalarType, group_size: int, zero_points: bool,
                   g_idx: torch.Tensor | None = None, scale_dtype: torch.dtype = torch.bfloat16) -> dict[str, torch.Tensor]:
    """Quantize a float weight [N, K] to the compressed-tensors wNa16 parameters.

    Symmetric (uint4b8/uint8b128): scale = amax / qmax_pos. Asymmetric (uint4/uint8 + zero points):
    scale = (max - min) / (2**bits - 1), zero point = round(-min / scale). Scales are rounded to
    ``scale_dtype`` first, so the codes are chosen against the scale actually stored.
    """
    if w.dim() != 2:
        raise ValueError(f"w.shape: expected [N, K], got {tuple(w.shape)}")
    n, k = w.shape
    bits = weight_type.size_bits
    g = k if group_size == -1 else group_size
    if k % g:
        raise ValueError(f"group_size: K={k} is not divisible by {g}")
    ngroups = k // g
    gi = (g_idx if g_idx is not None else default_g_idx(k, g, w.device)).to(w.device).long()
    if gi.shape != (k,) or int(gi.min()) < 0 or int(gi.max()) >= ngroups:
        raise ValueError(f"g_idx: expected [K={k}] ints in [0, {ngroups}), got shape {tuple(gi.shape)}")
    wf = w.double()
    # per (row, group) statistics: sort the channels by group so each group is contiguous
    perm = torch.argsort(gi, stable=True)
    if not torch.equal(torch.bincount(gi, minlength=ngroups), torch.full((ngroups,), g, device=gi.device)):
        raise ValueError(f"g_idx: every group must hold exactly group_size={g} channels")
    grouped = wf[:, perm].reshape(n, ngroups, g)
    wmax, wmin = grouped.amax(-1), grouped.amin(-1)  # [N, G]
    qmax = (1 << bits) - 1
    # smallest scale that survives the cast to scale_dtype (1e-8 is 0 in fp16: an all-zero group
    # would then give 0/0 codes)
    min_scale = max(1e-8, torch.finfo(scale_dtype).tiny * torch.finfo(scale_dtype).eps)
    if zero_points:
        wmax, wmin = wmax.clamp(min=0), wmin.clamp(max=0)
        scale = ((wmax - wmin) / qmax).clamp(min=min_scale).to(scale_dtype)
        zp = torch.round(-wmin / scale.double()).clamp(0, qmax)
        codes = torch.round(wf / scale.double()[:, gi]) + zp[:, gi]
    else:
        pos = (1 << (bits - 1)) - 1  # 7 for 4-bit: codes -8..7
        scale = (torch.maximum(wmax.abs(), wmin.abs()) / pos).clamp(min=min_scale).to(scale_dtype)
        zp = None
        codes = torch.round(wf / scale.double()[:, gi]) + weight_type.bias
    codes = codes.clamp(0, qmax).to(torch.int32)
    out = {"weight_packed": pack_along(codes, bits, 1), "weight_scale": scale}
    if zp is not None:
        out["weight_zero_point"] = pack_along(zp.to(torch.int32), bits, 0)
    if g_idx is not None:
        out["weight_g_idx"] = gi.to(torch.int32)
    return out


def dequantize_wna16(weight_type: ScalarType, weight_packed: torch.Tensor, weight_scale: torch.Tensor,
                     weight_zero_point: torch.Tensor | None = None, weight_g_idx: torch.Tensor | None = None,
                     group_size: int = -1, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """compressed-tensors wNa16 parameters -> float weight [N, K] in ``dtype``."""
    bits = weight_type.size_bits
    codes = unpack_along(weight_packed, bits, 1)  # [N, K]
    n, k = codes.shape
    ngroups = weight_scale.shape[1]
    if weight_g_idx is not None:
        if tuple(weight_g_idx.shape) != (k,):
            raise ValueError(f"weight_g_idx.shape: expected [K={k}], got {tuple(weight_g_idx.shape)}")
        gi = weight_g_idx.long()
    else:
        gi = torch.arange(k, device=codes.device) // (k if group_size == -1 else group_size)
    if weight_scale.shape != (n, ngroups) or int(gi.max()) >= ngroups:
        raise ValueError(f"weight_scale.shape: expected [{n}, {int(gi.max()) + 1}] for these groups, got {tuple(weight_scale.shape)}")
    s = weight_scale.to(dtype)[:, gi]
    if weight_zero_point is not None:
        zp = unpack_along(weight_zero_point, bits, 0)[:n]  # [N, G]
        q = codes.to(dtype) - zp.to(dtype)[:, gi]
    else:
        q = codes.to(dtype) - weight_type.bias
    return q * s
