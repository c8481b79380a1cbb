"""Load-time re-lay of GPTQ / AWQ 4-bit weights for the CUTLASS mixed-input W4A16 GEMM (pure torch,
runs and is tested on CPU; the kernel is ``csrc/w4a16.cuh``).

What the kernel reads:
- the weight as signed int4 (``cutlass::int4b_t``): a uint4b8 / uint4 code q becomes q - 8, which in
  4-bit two's complement is q with bit 3 flipped; stored in CUTLASS's shuffled order (below), two
  codes per byte, element 2i in the low nibble;
- scales as a [K/group, N] table in the activation dtype (N contiguous: CUTLASS wants them MN-major);
- for zero points, an additive [K/group, N] term in the activation dtype:
  (q - z) s = (q - 8) s + (8 - z) s, so the term is (8 - z) s (|8 - z| <= 8 keeps its rounding small).

The shuffled order is the layout ``tile_to_shape(atom, (N, K, 1))`` of CUTLASS's
``compute_memory_reordering_atom`` for a 16-bit wgmma with the [0,2,4,6,1,3,5,7] value shuffle
(example 55's int4 path): a 16 x 16 (n x k) atom, atoms N-fastest. Within the atom
n = a + 8 b (a < 8, b < 2) and k = c + 2 d + 8 e (c < 2, d < 4, e < 2) sit at 32 a + b + 4 c + 8 d + 2 e:
each thread's 8 values of one k-block are one 32-bit word, in the order the lop3 converter wants.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from qlinear.formats.int_pack import unpack_along

K_TILE = 64  # the GEMM's K tile: a scale group must hold whole K tiles (or be all of K)


@dataclass(frozen=True)
class ReorderAtom:
    """One warp's int4 fragment of a register-sourced wgmma, as CUTLASS's
    ``compute_memory_reordering_atom`` lays it out: ``rows`` x ``cols`` (n x k) elements, ``offset``
    maps (n, k) inside the atom to its slot. The atom tiles (N, K) atoms N-fastest:
    slot + rows * cols * (n / rows) + cols * N * (k / cols)."""

    rows: int
    cols: int
    offset: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    bits: int = 4  # code width: 4-bit codes are stored two per byte (element 2i in the low nibble), 8-bit one per byte

    def check(self, n: int, k: int) -> None:
        if n % self.rows or k % self.cols:
            raise ValueError(f"weight shape: N={n} must be a multiple of {self.rows} and K={k} of {self.cols} (the reorder atom)")

    def offsets(self, n: int, k: int, device=None) -> torch.Tensor:
        """int64 [N, K]: where logical element (n, k) lives in the re-laid buffer."""
        self.check(n, k)
        nn = torch.arange(n, device=device, dtype=torch.int64).view(n, 1)
        kk = torch.arange(k, device=device, dtype=torch.int64).view(1, k)
        return self.offset(nn % self.rows, kk % self.cols) + self.rows * self.cols * (nn // self.rows) + self.cols * n * (kk // self.cols)

    def reorder(self, codes_nk: torch.Tensor) -> torch.Tensor:
        """[N, K] codes (0 .. 2^bits - 1, any int dtype) -> uint8 [N*K*bits/8] in this order. Done per
        atom (one gather of rows * cols slots) so a large layer needs no [N, K] index tensor."""
        n, k = codes_nk.shape
        self.check(n, k)
        r, c = self.rows, self.cols
        gather = torch.argsort(self.offsets(r, c).reshape(-1)).to(codes_nk.device)  # slot o holds element gather[o]
        t = (codes_nk & ((1 << self.bits) - 1)).to(torch.uint8).view(n // r, r, k // c, c).permute(2, 0, 1, 3)
        flat = t.reshape(k // c, n // r, r * c)[..., gather]
        if self.bits == 8:
            return flat.reshape(-1).contiguous()
        flat = flat.reshape(-1, 2)
        return (flat[:, 0] | (flat[:, 1] << 4)).contiguous()

    def unreorder(self, packed: torch.Tensor, n: int, k: int) -> torch.Tensor:
        """Inverse of ``reorder``: uint8 [N*K*bits/8] -> [N, K] codes (uint8)."""
        flat = packed if self.bits == 8 else torch.stack([packed & 0xF, packed >> 4], 1).reshape(-1)
        return flat[self.offsets(n, k, packed.device).reshape(-1)].reshape(n, k)


def _w4a16_slot(n: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    a, b = n % 8, n // 8
    c, d, e = k % 2, (k // 2) % 4, k // 8
    return 32 * a + b + 4 * c + 8 * d + 2 * e


def _w8a16_slot(n: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    a, b = n % 8, n // 8
    c, d, e = k % 2, (k // 2) % 4, k // 8
    return 32 * a + b + 2 * c + 8 * d + 4 * e


W4A16_ATOM = ReorderAtom(16, 16, _w4a16_slot)
# 8-bit codes (W8A16): the same thread-to-element map, 4 bytes per thread and k-block in CUTLASS's
# [3120] pair order (its int8 -> 16-bit LayoutAwareConvert): (n, k) -> 32 a + b + 2 c + 8 d + 4 e.
W8A16_ATOM = ReorderAtom(16, 16, _w8a16_slot, bits=8)
ATOM = W4A16_ATOM.rows


def reorder_offsets(n: int, k: int, device=None) -> torch.Tensor:
    return W4A16_ATOM.offsets(n, k, device)


def reorder_int4(codes_nk: torch.Tensor) -> torch.Tensor:
    return W4A16_ATOM.reorder(codes_nk)


def unreorder_int4(packed: torch.Tensor, n: int, k: int) -> torch.Tensor:
    return W4A16_ATOM.unreorder(packed, n, k)


def weight_int4(weight_packed: torch.Tensor, perm: torch.Tensor | None = None, bits: int = 4) -> torch.Tensor:
    """compressed-tensors int32 [N, K*bits/32] (uint4 / uint8 codes packed along K) -> the kernel's
    uint8 buffer: K permuted by ``perm`` (act-order: row i <- row perm[i]) if given, codes shifted to
    signed (q - 2^(bits-1), a flip of the top bit in two's complement), in the order of ``bits``'s atom."""
    if weight_packed.dtype != torch.int32 or weight_packed.dim() != 2:
        raise ValueError(f"weight_packed: expected int32 [N, K*{bits}/32], got {weight_packed.dtype} {tuple(weight_packed.shape)}")
    codes = unpack_along(weight_packed, bits, 1)  # [N, K], 0 .. 2^bits - 1
    if perm is not None:
        codes = codes[:, perm.long()]
    atom = W8A16_ATOM if bits == 8 else W4A16_ATOM
    return atom.reorder(codes ^ (1 << (bits - 1)))


def weight_fp4(codes_nk: torch.Tensor) -> torch.Tensor:
    """E2M1 codes [N, K] (0..15, sign in bit 3) -> the FP4 GEMM's uint8 buffer: the codes as they are
    (no sign flip: the kernel decodes E2M1, csrc/mixed_input_float.cuh) in the W4A16 order."""
    return W4A16_ATOM.reorder(codes_nk)


def sub_scale_table(scales: torch.Tensor, group: int, dtype: torch.dtype) -> torch.Tensor:
    """FP4 group scales [N, K/group] -> [K/64, N, 64/group] in ``dtype``: per (64-deep K tile, weight row)
    one packet of the tile's group scales, the element CUTLASS loads per row and K tile (SubScales)."""
    if scales.dim() != 2 or group not in (16, 32):
        raise ValueError(f"weight_scale: expected 2-D [N, K/group] with group 16 or 32, got {tuple(scales.shape)}, group {group}")
    n, g = scales.shape
    if (g * group) % K_TILE:
        raise ValueError(f"weight_scale: K = {g * group} is not a multiple of the GEMM's K tile {K_TILE}")
    per = K_TILE // group
    return scales.to(dtype).reshape(n, g // per, per).permute(1, 0, 2).contiguous()


def scale_table(weight_scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[N, G] -> [G, N] contiguous in ``dtype``."""
    if weight_scale.dim() != 2:
        raise ValueError(f"weight_scale: expected 2-D [N, K/group], got {tuple(weight_scale.shape)}")
    return weight_scale.to(dtype).t().contiguous()


def zero_table(weight_zero_point: torch.Tensor, weight_scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """compressed-tensors int32 [N/8, G] zero points (packed along N) and scales [N, G] -> the additive
    term (8 - z) * s as [G, N] in ``dtype`` (computed in fp32, rounded once)."""
    n, g = weight_scale.shape
    z = unpack_along(weight_zero_point, 4, 0)[:n]  # [N, G]
    if tuple(z.shape) != (n, g):
        raise ValueError(f"weight_zero_point.shape: expected [{n // 8}, {g}] packed along N, got {tuple(weight_zero_point.shape)}")
    return ((8 - z).to(torch.float32) * weight_scale.to(torch.float32)).to(dtype).t().contiguous()


def act_order_perm(g_idx: torch.Tensor, k: int, group: int) -> torch.Tensor:
    """g_idx [K] -> the int64 permutation sorting K by group. The kernel needs the sorted groups to be
    the contiguous k // group blocks (what GPTQ act-order produces); anything else is refused."""
    gi = g_idx.to(torch.int64)
    perm = torch.argsort(gi, stable=True)
    if not torch.equal(gi[perm], torch.arange(k, device=gi.device) // group):
        raise ValueError(f"weight_g_idx: every group must hold exactly group_size={group} channels "
                         "(the mixed-input kernel reads contiguous scale groups)")
    return perm


# The act-order gathers (csrc/act_order_gather.cuh) read the permutation as uint16: a quarter of int64's bytes,
# which the row-staged kernel reads once per row of x. Longer K keeps int64 and goes through index_select.
GATHER_INDEX_MAX_K = 65536


def gather_index(perm: torch.Tensor) -> torch.Tensor:
    """The int64 K permutation as the gathers read it: uint16 bits in an int16 tensor (torch has no
    general uint16) when K <= GATHER_INDEX_MAX_K, else unchanged."""
    if perm.numel() > GATHER_INDEX_MAX_K:
        return perm
    return perm.to(torch.int32).to(torch.int16).contiguous()  # 32768 .. 65535 wrap to the same 16 bits


def gather_index_long(index: torch.Tensor) -> torch.Tensor:
    """gather_index's inverse: the int64 permutation (for index_select and references)."""
    return index.to(torch.int64) & 0xFFFF if index.dtype == torch.int16 else index
