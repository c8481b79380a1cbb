"""What the FP8 and INT8 W8A8 kernels share: gates, load-time re-lays (pure torch, tested on CPU)
and the per-call launch into the extension."""

from __future__ import annotations

import torch

from . import configs
from .gates import CutlassKernelMixin

PRIORITY = 10  # below torch (17-19), triton (20) and fbgemm (25) until measured faster on the H200
IO_DTYPES = (torch.bfloat16, torch.float16)  # activations in, output out (the epilogue's dtypes)
ALIGN = 16  # TMA: 16-byte rows of the 1-byte A and B (K), and 16-element rows of the output (N)


class CutlassW8A8Mixin(CutlassKernelMixin):
    priority = PRIORITY
    notes = "JIT-compiles its CUDA extension (CUTLASS, sm_90a) when the first layer loads"

    @classmethod
    def shape_reason(cls, c) -> str | None:
        if c.weight_shape is None:
            return "weight_shape (N, K) is required to lay the weight out at load time"
        n, k = c.weight_shape
        if n % ALIGN or k % ALIGN:
            return f"N={n} and K={k} must be multiples of {ALIGN} (TMA copies 16-byte aligned rows)"
        if c.input_dtype not in IO_DTYPES:
            return f"input dtype {c.input_dtype} is not bfloat16/float16"
        if c.out_dtype is not None and c.out_dtype not in IO_DTYPES:
            return f"out_dtype {c.out_dtype} is not bfloat16/float16 (the epilogue writes 16-bit)"
        return None

    def _out_dtype(self, x: torch.Tensor) -> torch.dtype:
        dt = self.config.out_dtype
        if dt is not None:
            return dt
        return x.dtype if x.dtype in IO_DTYPES else self.config.input_dtype

    def _launch(self, q, w_nk, a_scale, w_scale, bias, azp, adj, dt, n):
        m = q.shape[0]
        out = torch.empty((m, n), dtype=dt, device=q.device)
        if m == 0:
            return out
        if bias is not None and bias.dtype != dt:
            bias = bias.to(dt)
        tile = configs.forced()
        self._ext.scaled_mm(out, q, w_nk, a_scale, w_scale, bias if bias is None else bias.contiguous(), azp, adj,
                            configs.tile_for(m) if tile is None else tile)
        return out


# ---- load-time re-lays (pure torch) ------------------------------------------------------------
def weight_nk(weight: torch.Tensor, dtype: torch.dtype, name: str) -> torch.Tensor:
    """The as-loaded [K, N] weight -> contiguous [N, K] (K-major, what the TMA B operand reads); no
    copy when it already is the transposed view of a contiguous [N, K]."""
    if weight.dtype != dtype:
        raise ValueError(f"{name}.dtype: expected {str(dtype).removeprefix('torch.')}, got {weight.dtype}")
    if weight.dim() != 2:
        raise ValueError(f"{name}.shape: expected 2-D [K, N], got {tuple(weight.shape)}")
    w = weight.t()
    return w if w.is_contiguous() else w.contiguous()


def flat_scale(s: torch.Tensor | None, n: int, name: str, logical_widths=None) -> torch.Tensor:
    """A weight scale [1] / [N] / [N, 1] -> fp32 contiguous [1] or [N]; a fused module's one scale per
    part (``logical_widths``) is expanded per column."""
    if s is None:
        raise ValueError(f"{name}: the layer has no weight scale")
    f = s.detach().reshape(-1).to(torch.float32).contiguous()
    if f.numel() in (1, n):
        return f
    if logical_widths and f.numel() == len(logical_widths) and sum(logical_widths) == n:
        return torch.repeat_interleave(f, torch.tensor(list(logical_widths), device=f.device)).contiguous()
    raise ValueError(f"{name}.shape: expected [1] or [{n}, 1], got {tuple(s.shape)}")


def one_float(t: torch.Tensor | None, name: str, what: str) -> torch.Tensor:
    """A static scale -> fp32 [1] (the max over a fused module's parts, as vLLM does)."""
    if t is None:
        raise ValueError(f"{name}: {what} needs it")
    return t.detach().reshape(-1).to(torch.float32).max().reshape(1)


def one_int(t: torch.Tensor | None, name: str, what: str) -> torch.Tensor:
    if t is None or t.numel() != 1:
        raise ValueError(f"{name}: {what} needs a one-element zero point")
    return t.detach().reshape(1).to(torch.int32)


def column_sums(adj: torch.Tensor | None, w_nk: torch.Tensor, name: str) -> torch.Tensor:
    """``azp_adj`` as int32 [N]: given, or the weight's column sums (exact in int32 for K < 2^24)."""
    n = w_nk.shape[0]
    if adj is None:
        return w_nk.to(torch.int32).sum(1, dtype=torch.int32)
    if adj.numel() != n:
        raise ValueError(f"{name}.shape: expected N={n} column sums, got {tuple(adj.shape)}")
    return adj.detach().reshape(-1).to(torch.int32).contiguous()


def as_rows(x: torch.Tensor, k: int) -> torch.Tensor:
    """x [..., K] -> [M, K] with contiguous, 16-byte aligned rows (copied only if they are not)."""
    x2 = x.reshape(-1, k)
    if x2.stride(-1) != 1 or x2.stride(0) % 8 or x2.data_ptr() % 16:
        x2 = x2.contiguous() if x2.stride(-1) != 1 or x2.stride(0) % 8 else x2.clone()
    return x2
