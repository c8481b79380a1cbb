"""Weight and scale re-layouts for aiter's kernels, in plain torch (they run at load time, on any
device, and are tested on CPU against the reference formats).

* ``shuffle_weight`` — the pre-shuffled B operand of ``gemm_a8w8_bpreshuffle`` (and of hipBLASLt's
  ``bpreshuffle`` mode): aiter's ``shuffle_weight(w, layout=(16, 16))``. For 1-byte elements the
  [N, K] matrix is cut into tiles of 16 rows x 32 columns, tiles stored row-major (all K-tiles of
  the first 16 rows, then the next 16 rows); inside a tile the two 16 x 16 halves (columns 0-15,
  then 16-31) are stored one after the other, each as its 16 rows of 16 contiguous bytes. That is
  the order in which one 64-lane wavefront loads a 16x16 MFMA operand: 16 bytes per lane.
  ``unshuffle_weight`` is an independent inverse (computed per element from the address formula,
  not by undoing the reshape) that the tests use to prove the round trip.
* ``e4m3fn_to_fnuz`` — MI300 (gfx942) reads FP8 as ``float8_e4m3fnuz`` (exponent bias 8, no
  negative zero, max 240), not OCP ``e4m3fn`` (bias 7, max 448). The same byte means half the
  value in fnuz, so the bytes are kept and the scale doubled; the one byte fn uses for -0 (0x80)
  is NaN in fnuz and becomes +0.
"""

from __future__ import annotations

import torch

FNUZ = torch.float8_e4m3fnuz
FN = torch.float8_e4m3fn


def fp8_max(dtype: torch.dtype) -> float:
    """The largest value activations are quantized to. For fnuz this is 224, not its finite max 240:
    fnuz byte b means half of what e4m3fn byte b means, so quantizing to 448 / 2 with a doubled
    scale rounds exactly as the e4m3fn reference does (vLLM uses 224 on fnuz for the same reason)."""
    return 224.0 if dtype == FNUZ else float(torch.finfo(dtype).max)


# ---- aiter shuffle_weight(layout=(16, 16)) ---------------------------------------------------------
def _tile(w: torch.Tensor, n_tile: int, k_tile: int) -> tuple[int, int]:
    if w.dim() != 2:
        raise ValueError(f"weight.shape: expected a 2-D [N, K] matrix, got {tuple(w.shape)}")
    if w.element_size() != 1:
        raise ValueError(f"weight.dtype: the (16, 16) shuffle is defined here for 1-byte elements (int8 / fp8), got {w.dtype}")
    n, k = w.shape
    if n % n_tile or k % k_tile:
        raise ValueError(f"weight.shape: N={n} must be a multiple of {n_tile} and K={k} of {k_tile} for the (16, 16) shuffle")
    return n, k


def shuffle_weight(w: torch.Tensor, n_tile: int = 16, k_lane_bytes: int = 16) -> torch.Tensor:
    """[N, K] 1-byte weight -> the same shape in aiter's ``layout=(16, 16)`` pre-shuffled order."""
    k_tile = 2 * k_lane_bytes
    n, k = _tile(w, n_tile, k_tile)
    raw = w.contiguous().view(torch.uint8)
    # (n-tile, row in tile, k-tile, half, byte) -> (n-tile, k-tile, half, row in tile, byte)
    t = raw.reshape(n // n_tile, n_tile, k // k_tile, 2, k_lane_bytes).permute(0, 2, 3, 1, 4)
    return t.contiguous().reshape(n, k).view(w.dtype)


def shuffled_position(n_idx: torch.Tensor, k_idx: torch.Tensor, k: int, n_tile: int = 16, k_lane_bytes: int = 16) -> torch.Tensor:
    """Flat offset, in the shuffled buffer, of element (n, k) of the original [N, K] matrix."""
    k_tile = 2 * k_lane_bytes
    tile_bytes = n_tile * k_tile
    tile = (n_idx // n_tile) * (k // k_tile) + k_idx // k_tile
    half = (k_idx % k_tile) // k_lane_bytes
    return tile * tile_bytes + half * (n_tile * k_lane_bytes) + (n_idx % n_tile) * k_lane_bytes + k_idx % k_lane_bytes


def unshuffle_weight(ws: torch.Tensor, n_tile: int = 16, k_lane_bytes: int = 16) -> torch.Tensor:
    """Inverse of ``shuffle_weight`` by direct addressing: element (n, k) is read from its shuffled offset."""
    n, k = _tile(ws, n_tile, 2 * k_lane_bytes)
    ni = torch.arange(n, device=ws.device).unsqueeze(1).expand(n, k)
    ki = torch.arange(k, device=ws.device).unsqueeze(0).expand(n, k)
    flat = ws.contiguous().view(torch.uint8).reshape(-1)
    return flat[shuffled_position(ni, ki, k, n_tile, k_lane_bytes)].reshape(n, k).view(ws.dtype)


# ---- FP8 flavours ------------------------------------------------------------------------------------
def e4m3fn_to_fnuz(w: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(e4m3fn weight, its dequant scale) -> (e4m3fnuz weight, scale) with the same values: bytes
    kept, scale doubled, -0 (0x80, NaN in fnuz) made +0."""
    if w.dtype != FN:
        raise ValueError(f"weight.dtype: expected float8_e4m3fn to convert, got {w.dtype}")
    b = w.contiguous().view(torch.uint8)
    b = torch.where(b == 0x80, torch.zeros_like(b), b)
    return b.view(FNUZ), scale.float() * 2.0


def to_device_fp8(w: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's e4m3fn weight and scale, in the FP8 flavour ``dtype`` the GPU computes with."""
    if dtype == FN:
        return w, scale.float()
    if dtype == FNUZ:
        return e4m3fn_to_fnuz(w, scale)
    raise ValueError(f"dtype: {dtype} is not an FP8 e4m3 flavour")


def scale_factor(dtype: torch.dtype) -> float:
    """How much larger a dequant scale is in ``dtype`` than in e4m3fn for the same bytes (2 for fnuz)."""
    return 2.0 if dtype == FNUZ else 1.0
