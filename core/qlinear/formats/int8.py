"""INT8 scaled formats: per-tensor / per-channel weights; per-token dynamic or per-tensor static
activations, symmetric or asymmetric (a zero point, vLLM's "azp")."""

from __future__ import annotations

import torch


def quantize_int8_weight(w: torch.Tensor, channelwise: bool):
    """w [N, K] -> (int8 [N, K], fp32 scale [N, 1] or [1]); symmetric, w ≈ q * s."""
    wf = w.float()
    amax = wf.abs().amax(1, keepdim=True) if channelwise else wf.abs().amax().reshape(1)
    s = (amax / 127.0).clamp(min=1e-10)
    return torch.round(wf / s).clamp(-128, 127).to(torch.int8), s


def int8_static_scale(x: torch.Tensor, symmetric: bool):
    """Calibrate a static per-tensor (scale, zero point) from sample activations."""
    xf = x.float()
    if symmetric:
        return (xf.abs().amax() / 127.0).clamp(min=1e-10).reshape(1), None
    lo, hi = xf.amin().clamp(max=0), xf.amax().clamp(min=0)
    s = ((hi - lo) / 255.0).clamp(min=1e-10).reshape(1)
    zp = torch.round(-128 - lo / s).clamp(-128, 127).to(torch.int32).reshape(1)
    return s, zp


def quantize_int8_activation(x: torch.Tensor, symmetric: bool, scale: torch.Tensor | None = None,
                             zero_point: torch.Tensor | None = None):
    """x [M, K] -> (int8 q, fp32 scale [M,1] or [1], int32 zero point or None), x ≈ (q - zp) * s.
    With ``scale`` given the scheme is static (per tensor), else dynamic per token."""
    xf = x.float()
    if scale is not None:
        if not symmetric and zero_point is None:
            raise ValueError("zero_point: a static asymmetric scheme needs the input zero point")
        s = scale.float().reshape(1)
        zp = None if symmetric else zero_point.to(torch.int32).reshape(1)
    elif symmetric:
        s = (xf.abs().amax(-1, keepdim=True) / 127.0).clamp(min=1e-10)
        zp = None
    else:
        lo = xf.amin(-1, keepdim=True).clamp(max=0)
        hi = xf.amax(-1, keepdim=True).clamp(min=0)
        s = ((hi - lo) / 255.0).clamp(min=1e-10)
        zp = torch.round(-128 - lo / s).clamp(-128, 127).to(torch.int32)
    q = torch.round(xf / s)
    if zp is not None:
        q = q + zp
    return q.clamp(-128, 127).to(torch.int8), s, zp


def azp_adj(w_q_kn: torch.Tensor) -> torch.Tensor:
    """Column sums of the int8 weight [K, N] -> int32 [N]: x@W = (q - zp)@W = q@W - zp * azp_adj."""
    return w_q_kn.to(torch.int32).sum(0, dtype=torch.int32)
