"""Weight and scale layouts the FlashInfer GEMMs read, as pure tensor code (any device, CPU-tested).

FlashInfer ships some of these as functions too (``shuffle_matrix_a``, ``shuffle_matrix_sf_a``,
``nvfp4_block_scale_interleave``); the kernels use these torch versions instead, so the transforms
run without CUDA and are tested on CPU. Nothing here needs the library's own implementation for
correctness: ``shuffle_matrix_a`` is itself a torch row gather in flashinfer (utils.py), and the
128x4 interleave is the fixed CUTLASS/TRT-LLM scale-factor layout. The GPU tests compare these
against flashinfer's functions where the library has them.
"""

from __future__ import annotations

import torch

# the 128x4 block-scale swizzle (CUTLASS / TRT-LLM "128x4" SF layout) is shared with other providers
from qlinear.formats.swizzle import round_up, swizzle_128x4, unswizzle_128x4  # noqa: F401


def swizzle_mx_scale_flat(scale: torch.Tensor) -> torch.Tensor:
    """MXFP4/MXFP8 E8M0 scales (uint8 [R, K/32]) -> the 1-D swizzled buffer ``mm_mxfp8`` takes."""
    return swizzle_128x4(scale).reshape(-1)


# ---- NVFP4 padding for the CUTLASS / cuDNN / b12x paths --------------------------------------------
NVFP4_N_ALIGN = 32  # rows of the packed weight (vLLM pads to 32)
NVFP4_K_ALIGN = 64  # elements: whole 4-column tiles of 16-element scales, so data and scale K agree


def pad_nvfp4_weight(weight: torch.Tensor, n_align: int = NVFP4_N_ALIGN, k_align: int = NVFP4_K_ALIGN):
    """Packed FP4 weight uint8 [N, K/2] -> ([round_up(N, n_align), round_up(K, k_align)/2], K pad in
    elements). Padding is code 0 (+0.0), so padded rows/columns contribute nothing."""
    n, kb = weight.shape
    k = kb * 2
    np_, kp = round_up(n, n_align), round_up(k, k_align)
    if (np_, kp) == (n, k):
        return weight.contiguous(), 0
    out = torch.zeros(np_, kp // 2, dtype=weight.dtype, device=weight.device)
    out[:n, :kb] = weight
    return out, kp - k


def pad_rows(t: torch.Tensor, rows: int) -> torch.Tensor:
    """Zero-pad dim 0 of a 2-D tensor to ``rows``."""
    if t.shape[0] == rows:
        return t.contiguous()
    out = torch.zeros(rows, *t.shape[1:], dtype=t.dtype, device=t.device)
    out[: t.shape[0]] = t
    return out


def pad_cols(t: torch.Tensor, cols: int) -> torch.Tensor:
    """Zero-pad the last dim of a 2-D tensor to ``cols`` (activations before quantization)."""
    if t.shape[-1] == cols:
        return t
    return torch.nn.functional.pad(t, (0, cols - t.shape[-1]))


def slice_output(out: torch.Tensor, n: int, m: int | None = None) -> torch.Tensor:
    """Drop the padded output columns (and rows, when M was padded)."""
    if m is not None and out.shape[0] != m:
        out = out[:m]
    return out if out.shape[-1] == n else out[..., :n]


# ---- TRT-LLM-gen matrix shuffles (flashinfer.shuffle_matrix_a / shuffle_matrix_sf_a) -----------
_BLK16 = (0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15)
_BLK32 = (0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27,
          4, 12, 20, 28, 5, 13, 21, 29, 6, 14, 22, 30, 7, 15, 23, 31)


def shuffle_row_indices(m: int, epilogue_tile_m: int = 128) -> torch.Tensor:
    """``idx`` with shuffled[new] = original[idx[new]]: within each block of 32 rows (16 when the
    epilogue tile is not a multiple of 128), original row i goes to row map[i]."""
    bs = 32 if epilogue_tile_m % 128 == 0 else 16
    row_map = _BLK32 if bs == 32 else _BLK16
    if m % bs:
        raise ValueError(f"rows: {m} must be a multiple of {bs} to shuffle for TRT-LLM")
    old = torch.arange(m)
    new = (old // bs) * bs + torch.tensor(row_map)[old % bs]
    idx = torch.empty(m, dtype=torch.long)
    idx[new] = old
    return idx


def shuffle_matrix_a(t: torch.Tensor, epilogue_tile_m: int = 128) -> torch.Tensor:
    """Row shuffle of a weight for the TRT-LLM GEMM (rows = N)."""
    return t[shuffle_row_indices(t.shape[0], epilogue_tile_m).to(t.device)].contiguous()


def unshuffle_matrix_a(t: torch.Tensor, epilogue_tile_m: int = 128) -> torch.Tensor:
    idx = shuffle_row_indices(t.shape[0], epilogue_tile_m).to(t.device)
    out = torch.empty_like(t)
    out[idx] = t
    return out


def shuffle_matrix_sf_a(scale: torch.Tensor, epilogue_tile_m: int = 128) -> torch.Tensor:
    """Linear block scales [N, K/16] (N % 128 == 0, K/16 % 4 == 0) -> the same row shuffle as the
    weight, then the 128x4 interleave, reshaped back to [N, K/16] (flashinfer's shuffle_matrix_sf_a)."""
    n, c = scale.shape
    if n % 128 or c % 4:
        raise ValueError(f"scale.shape: rows must be a multiple of 128 and columns of 4, got {tuple(scale.shape)}")
    return swizzle_128x4(shuffle_matrix_a(scale, epilogue_tile_m)).reshape(n, c)
