"""Load-time re-lay of W4A8 weights for the CUTLASS int4 x FP8 GEMM (pure torch, runs and is tested on
CPU; the kernel is ``csrc/w4a8.cuh``).

CUTLASS's int4 -> FP8 path does no arithmetic on the weight: it looks each scaled value up in a
per-group table of eight E4M3 bytes with ``prmt`` (CUTLASS example 55's ``int4_fp8``). What it reads:

- the codes in the "unified" encoding: a negative q (-8..-1) keeps its two's complement nibble
  (1xxx), a positive q (1..7) is stored as 8 - q (0xxx), 0 as 0000. The low three bits index the
  table, the sign bit picks the table or its negation (``encode_codes``);
- per (group, output channel) the table ``[e4m3(-8 s), e4m3(-7 s), ..., e4m3(-1 s)]`` as 8 bytes,
  [K/group, N, 8] (N-major, what CUTLASS wants for scales); the kernel derives the positive half by
  flipping sign bits and reads slot 0 of it as 0 (``scale_tables``);
- the codes in CUTLASS's shuffled order for an 8-bit register-sourced wgmma
  (``compute_memory_reordering_atom<float_e4m3_t>()``): a 16 x 32 (n x k) atom where n = a + 8 b and
  k = c + 4 d + 16 e sit at 64 a + 4 b + c + 16 d + 8 e, so each thread's 16 values of a k-block are
  one 64-bit load.

So the kernel's weight is exactly ``qlinear.formats.w4a8``'s e4m3(q * s_g); the channel scale and the
activation's per-token scale are applied to the accumulator in the epilogue.
"""

from __future__ import annotations

import torch

from qlinear.formats.w4a8 import group_scales_e4m3, signed_codes

from .w4a16_layout import ReorderAtom

K_TILE = 128  # the GEMM's K tile (128 bytes of FP8 activations): a group holds whole K tiles, or is K


def _slot(n: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    a, b = n % 8, n // 8
    c, d, e = k % 4, (k // 4) % 4, k // 16
    return 64 * a + 4 * b + c + 16 * d + 8 * e


W4A8_ATOM = ReorderAtom(16, 32, _slot)


def encode_codes(q: torch.Tensor) -> torch.Tensor:
    """Signed int4 q [-8, 7] -> the lookup encoding (0..15, uint8)."""
    q = q.to(torch.int32)
    return torch.where(q > 0, 8 - q, q & 0xF).to(torch.uint8)


def decode_codes(codes: torch.Tensor) -> torch.Tensor:
    """Inverse of ``encode_codes`` (int32)."""
    c = codes.to(torch.int32)
    return torch.where(c >= 8, c - 16, torch.where(c == 0, c, 8 - c))


def weight_int4(weight_packed: torch.Tensor) -> torch.Tensor:
    """compressed-tensors int32 [N, K/8] (uint4b8) -> the kernel's uint8 [N*K/2] buffer."""
    return W4A8_ATOM.reorder(encode_codes(signed_codes(weight_packed)))


def scale_tables(weight_scale: torch.Tensor) -> torch.Tensor:
    """Group scales [N, G] -> uint8 [G, N, 8]: per entry the E4M3 bytes of -8 s ... -1 s."""
    s = group_scales_e4m3(weight_scale).float()  # [N, G], checked 0 <= s <= 56
    mult = -torch.arange(8, 0, -1, dtype=torch.float32, device=s.device)  # -8 .. -1
    lut = (s.t().unsqueeze(-1) * mult).to(torch.float8_e4m3fn)  # |8 s| <= 448: exact RNE
    return lut.view(torch.uint8).contiguous()


def lookup(codes: torch.Tensor, tables: torch.Tensor, group: int) -> torch.Tensor:
    """What the kernel's converter produces, from its own buffers: encoded codes [N, K] and tables
    [G, N, 8] -> float32 [N, K] (for tests: the re-lay checked against the format's reference)."""
    n, k = codes.shape
    neg = tables.view(torch.float8_e4m3fn).float().permute(1, 0, 2)  # [N, G, 8]
    pos = -neg
    pos[..., 0] = 0.0  # the positive table's slot 0 is code 0
    idx = (codes & 7).long()
    gi = (torch.arange(k, device=codes.device) // group).view(1, k).expand(n, k)
    rows = torch.arange(n, device=codes.device).view(n, 1).expand(n, k)
    vals_neg, vals_pos = neg[rows, gi, idx], pos[rows, gi, idx]
    return torch.where(codes >= 8, vals_neg, vals_pos)
