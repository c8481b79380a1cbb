"""The 128x4 block-scale layout that CUTLASS / TRT-LLM block-scaled GEMMs read (NVFP4, MXFP4, MXFP8
scale factors), in plain torch: shared by every provider that feeds such a GEMM.

A [R, C] scale matrix is zero-padded to [ceil(R/128)*128, ceil(C/4)*4] and cut into 128x4 tiles;
tile (r // 128, c // 4) is tile number (r // 128) * (C_pad / 4) + c // 4 (512 bytes each), and
inside it entry (r, c) sits at (r % 32) * 16 + ((r % 128) // 32) * 4 + c % 4 — i.e. reshape
[R/128, 4, 32, C/4, 4] and permute (0, 3, 2, 1, 4).
"""

from __future__ import annotations

import torch


def round_up(x: int, m: int) -> int:
    return (x + m - 1) // m * m


def swizzle_128x4(scale: torch.Tensor) -> torch.Tensor:
    """[R, C] -> [round_up(R, 128), round_up(C, 4)] in the 128x4 tiled order (same dtype; bytes moved)."""
    r, c = scale.shape
    rp, cp = round_up(r, 128), round_up(c, 4)
    raw = scale.view(torch.uint8) if scale.element_size() == 1 else scale
    pad = torch.zeros(rp, cp, dtype=raw.dtype, device=scale.device)
    pad[:r, :c] = raw
    out = pad.reshape(rp // 128, 4, 32, cp // 4, 4).permute(0, 3, 2, 1, 4).contiguous().reshape(rp, cp)
    return out.view(scale.dtype) if scale.element_size() == 1 else out


def unswizzle_128x4(sw: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Inverse of ``swizzle_128x4``: back to [rows, cols]."""
    rp, cp = sw.shape
    raw = sw.view(torch.uint8) if sw.element_size() == 1 else sw
    out = raw.reshape(rp // 128, cp // 4, 32, 4, 4).permute(0, 3, 2, 1, 4).reshape(rp, cp)[:rows, :cols].contiguous()
    return out.view(sw.dtype) if sw.element_size() == 1 else out
