"""One-time re-layout of compressed-tensors wNa16 parameters (4- and 8-bit codes) into the kernel's tile layout.

Pure tensor code (reshape/permute/shift), so it runs on CPU in tests and on the GPU at load time.

Weight tile layout (``repack_codes``): int32 ``[N/64, Kp/16, 32, bits]``. One (16 k x 64 n) tile is
``128*bits`` contiguous bytes; lane ``L = 4*g + t`` owns ``bits`` words holding every code of its
mma.m16n8k16 B fragments. 4-bit: word ``j`` holds the n8 tiles ``2j`` and ``2j+1``; nibble ``i`` (bits
4i..4i+3) is the code at::

    r = i % 4 (the half2 register after dequantization), half = i // 4 (low / high 16 bits)
    column n = 64*nt + 16*j + 8*(r // 2) + g
    row    k = 16*kt + 8*(r % 2) + 2*t + half

so ``(word >> 4r) & 0x000F000F`` puts rows (2t, 2t+1) [+8 for odd r] of one column in the two halves of
a 32-bit register: exactly one B register of the mma (low half = lower row). 8-bit: word ``j`` is n8 tile
``j``; byte ``i`` is the code at column ``64*nt + 8*j + g``, row ``16*kt + 8*(i % 2) + 2*t + i // 2``, so
``(word >> 8r) & 0x00FF00FF`` is B register ``r``.

Scale layout (``repack_group_values``): ``[G, N/64, 8, 8]``; entry ``[grp, nt, g, 2j + h]`` is the value
of column ``64*nt + 16*j + 8*h + g`` — the 8 values lane group ``g`` needs, as one 16-byte load.

Act-order (``act_order_plan``): channels are sorted by ``g_idx``; each group is padded to a multiple
of 16 channels (pad channels carry the zero code and read activation channel 0), so every 16-row k
tile belongs to one group; the kernel gets the group of each tile, the activation is gathered with
``kidx`` at run time. When every group has a multiple of 16 channels (the usual full-K case) there is
no padding and ``Kp == K``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

TILE_N = 64
TILE_K = 16
MAGIC = {torch.float16: 1024, torch.bfloat16: 128}  # the 16-bit float whose low mantissa bits take a code


def repack_codes(codes: torch.Tensor, bits: int = 4) -> torch.Tensor:
    """Unsigned codes [N, Kp] (any int dtype, < 2**bits) -> int32 [N/64, Kp/16, 32, bits] tile layout."""
    if bits not in (4, 8):
        raise ValueError(f"bits: must be 4 or 8, got {bits}")
    if codes.dim() != 2:
        raise ValueError(f"codes.shape: expected [N, K], got {tuple(codes.shape)}")
    n, k = codes.shape
    if n % TILE_N or k % TILE_K:
        raise ValueError(f"codes.shape: N={n} must be a multiple of {TILE_N} and K={k} of {TILE_K}")
    c = codes.to(torch.int64)
    if c.numel() and (int(c.min()) < 0 or int(c.max()) >= (1 << bits)):
        raise ValueError(f"codes: values must lie in [0, {(1 << bits) - 1}]")
    nt, kt = n // TILE_N, k // TILE_K
    if bits == 4:
        # n = nt*64 + j*16 + h*8 + g ; k = kt*16 + kb*8 + t*2 + half ; nibble i = half*4 + h*2 + kb
        c = c.reshape(nt, 4, 2, 8, kt, 2, 4, 2)  # nt, j, h, g, kt, kb, t, half
        c = c.permute(0, 4, 3, 6, 1, 7, 2, 5)  # nt, kt, g, t, j, half, h, kb
        c = c.reshape(nt, kt, 32, 4, 8)
    else:
        # n = nt*64 + j*8 + g ; k = kt*16 + kb*8 + t*2 + half ; byte i = half*2 + kb
        c = c.reshape(nt, 8, 8, kt, 2, 4, 2)  # nt, j, g, kt, kb, t, half
        c = c.permute(0, 3, 2, 5, 1, 6, 4)  # nt, kt, g, t, j, half, kb
        c = c.reshape(nt, kt, 32, 8, 4)
    shifts = torch.arange(32 // bits, device=c.device, dtype=torch.int64) * bits
    words = (c << shifts).sum(-1)
    words = torch.where(words >= (1 << 31), words - (1 << 32), words)
    return words.to(torch.int32).contiguous()


def zero_offset(act_dtype: torch.dtype, bits: int) -> int:
    """What the kernel adds to a zero point before subtracting it from a decoded code: MAGIC where
    MAGIC + code is exact in the 16-bit type, 0 for 8-bit bf16 (decoded through fp32 instead)."""
    return 0 if (bits == 8 and act_dtype == torch.bfloat16) else MAGIC[act_dtype]


def repack_group_values(v: torch.Tensor) -> torch.Tensor:
    """Per-(column, group) values [N, G] -> [G, N/64, 8, 8] (see module doc)."""
    n, gcount = v.shape
    if n % TILE_N:
        raise ValueError(f"scales.shape: N={n} must be a multiple of {TILE_N}")
    t = v.t().reshape(gcount, n // TILE_N, 4, 2, 8)  # grp, nt, j, h, g
    return t.permute(0, 1, 4, 2, 3).reshape(gcount, n // TILE_N, 8, 8).contiguous()


@dataclass
class ActOrderPlan:
    kidx: torch.Tensor  # int64 [Kp]: activation channel feeding each packed row (pads read channel 0)
    is_pad: torch.Tensor  # bool [Kp]
    row_group: torch.Tensor  # int64 [Kp]: group of each packed row
    tile_group: torch.Tensor  # int32 [Kp/16]

    @property
    def kp(self) -> int:
        return int(self.kidx.numel())

    @property
    def uniform_rows(self) -> int:
        """R when packed row r is in group r // R for every r (GPTQ act-order: K / G channels per
        group), i.e. the groups are plain groups of R rows after the sort; else 0."""
        used = int(self.row_group[-1]) + 1 if self.kp else 0
        if used == 0 or self.kp % used:
            return 0
        per = self.kp // used
        rows = torch.arange(self.kp, device=self.row_group.device) // per
        return per if bool(torch.equal(self.row_group.to(torch.int64), rows)) else 0

    @property
    def identity(self) -> bool:
        k = int((~self.is_pad).sum())
        return self.kp == k and bool(torch.equal(self.kidx, torch.arange(k, device=self.kidx.device)))


def act_order_plan(g_idx: torch.Tensor, num_groups: int) -> ActOrderPlan:
    """Sort channels by group and pad each group to a multiple of 16 rows."""
    gi = g_idx.to(torch.int64).cpu()
    if gi.dim() != 1 or (gi.numel() and (int(gi.min()) < 0 or int(gi.max()) >= num_groups)):
        raise ValueError(f"g_idx: expected [K] ints in [0, {num_groups})")
    order = torch.argsort(gi, stable=True)
    counts = torch.bincount(gi, minlength=num_groups)
    padded = (counts + TILE_K - 1) // TILE_K * TILE_K
    kp = int(padded.sum())
    kidx = torch.zeros(kp, dtype=torch.int64)
    is_pad = torch.ones(kp, dtype=torch.bool)
    row_group = torch.repeat_interleave(torch.arange(num_groups), padded)
    starts = torch.cumsum(padded, 0) - padded  # first packed row of each group
    src_starts = torch.cumsum(counts, 0) - counts
    # position of sorted channel s (in group grp, rank s - src_starts[grp]) in the padded order
    grp_sorted = gi[order]
    pos = starts[grp_sorted] + (torch.arange(gi.numel()) - src_starts[grp_sorted])
    kidx[pos] = order
    is_pad[pos] = False
    tile_group = row_group[::TILE_K].to(torch.int32)
    dev = g_idx.device
    return ActOrderPlan(kidx.to(dev), is_pad.to(dev), row_group.to(dev), tile_group.to(dev))


@dataclass
class Repacked:
    w: torch.Tensor  # int32 [N/64, Kp/16, 32, bits]
    s: torch.Tensor  # [G, N/64, 8, 8] act dtype
    zm: torch.Tensor | None  # zero_offset + zero point, like s (zero-point types only)
    tile_group: torch.Tensor | None  # int32 [Kp/16] (act-order only)
    kidx: torch.Tensor | None  # int64 [Kp] activation gather (act-order only)
    group_k: int  # group size along K for the kernel (Kp when per-channel)


def repack_wna16(codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None, g_idx: torch.Tensor | None,
                 group_size: int, act_dtype: torch.dtype, bits: int = 4) -> Repacked:
    """Unpacked codes [N, K], scales [N, G], zero points [N, G] (or None: the type's bias, 2**(bits-1)),
    g_idx [K] (or None) -> everything the kernel reads."""
    bias_code = 1 << (bits - 1)
    if act_dtype not in MAGIC:
        raise ValueError(f"act_dtype: must be float16 or bfloat16, got {act_dtype}")
    n, k = codes.shape
    ngroups = scales.shape[1]
    if scales.shape[0] != n:
        raise ValueError(f"scales.shape: expected [{n}, G], got {tuple(scales.shape)}")
    if zeros is not None and tuple(zeros.shape) != tuple(scales.shape):
        raise ValueError(f"zero points shape {tuple(zeros.shape)} does not match scales {tuple(scales.shape)}")
    tile_group = kidx = None
    if g_idx is not None:
        plan = act_order_plan(g_idx, ngroups)
        dev = codes.device
        gathered = codes[:, plan.kidx.to(dev)]
        if zeros is not None:
            pad_code = zeros.to(codes.dtype)[:, plan.row_group.to(dev)]
        else:
            pad_code = torch.full_like(gathered, bias_code)
        codes = torch.where(plan.is_pad.to(dev)[None, :], pad_code, gathered)  # pads dequantize to exactly 0
        tile_group, kidx, group_k = plan.tile_group, plan.kidx, plan.kp
        if plan.identity:
            kidx = None  # channels already in group order, no pads: no gather needed
        if plan.uniform_rows:  # every group spans the same packed rows: plain groups of that size,
            tile_group, group_k = None, plan.uniform_rows  # no per-tile group lookup in the kernels
    else:
        group_k = k if group_size == -1 else group_size
        if group_k % TILE_K:
            raise ValueError(f"group_size: {group_size} is not a multiple of {TILE_K}")
    w = repack_codes(codes, bits)
    s = repack_group_values(scales.to(act_dtype))
    zm = None
    if zeros is not None:
        zm = repack_group_values((zeros.to(torch.float32) + zero_offset(act_dtype, bits)).to(act_dtype))
    return Repacked(w, s, zm, tile_group, kidx, group_k)
