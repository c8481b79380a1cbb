"""FP8 E4M3 scaled formats: per-tensor / per-channel / 128x128-block weights; per-tensor /
per-token / 1x128-group activations, static (with optional upper bound) or dynamic."""

from __future__ import annotations

import torch

from .codes import FP8_MAX, to_e4m3

# Smallest dynamic scale, so an all-zero row quantizes to zeros instead of 0/0 (vLLM uses the same).
MIN_SCALE = 1.0 / (FP8_MAX * 512.0)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def quantize_fp8_weight(w: torch.Tensor, granularity: str, block: tuple[int, int] = (128, 128)):
    """w [N, K] -> (fp8 [N, K], fp32 scale): ``tensor`` -> [1]; ``channel`` -> [N, 1];
    ``block`` -> [ceil(N/bn), ceil(K/bk)] (the scale multiplies the code: w ≈ q * s)."""
    wf = w.float()
    if granularity == "tensor":
        s = (wf.abs().amax() / FP8_MAX).clamp(min=MIN_SCALE).reshape(1)
        return to_e4m3(wf / s), s
    if granularity == "channel":
        s = (wf.abs().amax(1, keepdim=True) / FP8_MAX).clamp(min=MIN_SCALE)
        return to_e4m3(wf / s), s
    if granularity == "block":
        s = (block_amax(wf, block) / FP8_MAX).clamp(min=MIN_SCALE)
        return to_e4m3(wf / expand_blocks(s, block, wf.shape)), s
    raise ValueError(f"granularity: {granularity!r} is not tensor, channel or block")


def block_amax(x: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    """amax over [bn, bk] tiles of a 2-D tensor, ragged edges included -> [ceil(N/bn), ceil(K/bk)]."""
    n, k = x.shape
    bn, bk = block
    pad = torch.zeros(_cdiv(n, bn) * bn, _cdiv(k, bk) * bk, dtype=x.dtype, device=x.device)
    pad[:n, :k] = x.abs()
    return pad.reshape(_cdiv(n, bn), bn, _cdiv(k, bk), bk).amax((1, 3))


def expand_blocks(s: torch.Tensor, block: tuple[int, int], shape) -> torch.Tensor:
    """[ceil(N/bn), ceil(K/bk)] scales -> [N, K] (each block's scale repeated over it)."""
    n, k = shape
    return s.repeat_interleave(block[0], 0)[:n].repeat_interleave(block[1], 1)[:, :k]


def quantize_fp8_activation(x: torch.Tensor, granularity: str, scale: torch.Tensor | None = None,
                            scale_ub: torch.Tensor | None = None, group: int = 128):
    """x [M, K] -> (fp8 [M, K], fp32 scale). ``tensor`` with ``scale`` given is static ([1]);
    without it dynamic. ``token`` -> [M, 1] dynamic (amax clamped to ``scale_ub`` if given);
    ``group`` -> [M, ceil(K/group)] dynamic 1 x ``group``."""
    xf = x.float()
    if granularity == "tensor":
        s = scale.float().reshape(1) if scale is not None else (xf.abs().amax() / FP8_MAX).clamp(min=MIN_SCALE).reshape(1)
        return to_e4m3(xf / s), s
    if granularity == "token":
        amax = xf.abs().amax(-1, keepdim=True)
        if scale_ub is not None:
            amax = amax.clamp(max=scale_ub.float())
        s = (amax / FP8_MAX).clamp(min=MIN_SCALE)
        return to_e4m3(xf / s), s
    if granularity == "group":
        s = (block_amax(xf, (1, group)) / FP8_MAX).clamp(min=MIN_SCALE)
        return to_e4m3(xf / expand_blocks(s, (1, group), xf.shape)), s
    raise ValueError(f"granularity: {granularity!r} is not tensor, token or group")


def dequantize_fp8(q: torch.Tensor, s: torch.Tensor, block: tuple[int, int] | None = None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """fp8 [R, C] with a broadcastable scale, or with block scales when ``block`` is given."""
    v = q.to(dtype)
    if block is not None:
        want = (_cdiv(q.shape[0], block[0]), _cdiv(q.shape[1], block[1]))
        if tuple(s.shape) != want:
            raise ValueError(f"s.shape: block scales for {tuple(q.shape)} in {block} blocks are {want}, got {tuple(s.shape)}")
        return v * expand_blocks(s.to(dtype), block, q.shape)
    return v * s.to(dtype)
