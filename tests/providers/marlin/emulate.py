"""Independent readers of the Marlin tile layout, written from the kernel's point of view (per lane,
per word, per nibble, with the PTX mma.m16n8k16 fragment rules), not from repack.py's reshapes.

``unrepack_codes`` inverts the weight layout; ``emulate_gemm`` replays the kernel's arithmetic
(dequantize each B register, multiply-add per the mma fragment layout) on CPU in float64.
"""

from __future__ import annotations

import torch


def _lane_coords():
    lane = torch.arange(32)
    return lane // 4, lane % 4  # g, t


def unrepack_codes(w: torch.Tensor) -> torch.Tensor:
    """int32 [N/64, Kp/16, 32, bits] -> codes [N, Kp], reading each code where the kernel finds it."""
    nt_n, kt_n, _, bits = w.shape
    out = torch.full((nt_n * 64, kt_n * 16), -1, dtype=torch.int64)
    words = w.to(torch.int64) & 0xFFFFFFFF
    g, t = _lane_coords()
    mask = (1 << bits) - 1
    # (word index, shift of the B register, n8 tile, which B register) as the kernel's inner loop reads them
    regs = []
    for n8 in range(8):
        if bits == 4:  # word n8/2, register 0 at >> 8*(n8%2), register 1 at >> 8*(n8%2)+4
            regs += [(n8 // 2, 8 * (n8 % 2), n8, 0), (n8 // 2, 8 * (n8 % 2) + 4, n8, 1)]
        else:  # word n8, register 0 at >> 0, register 1 at >> 8
            regs += [(n8, 0, n8, 0), (n8, 8, n8, 1)]
    for word, sh, n8, breg in regs:
        lo = (words[:, :, :, word] >> sh) & mask  # low half of the register after masking
        hi = (words[:, :, :, word] >> (sh + 16)) & mask
        col = 8 * n8 + g  # PTX: b0 holds rows 2t, 2t+1; b1 rows 2t+8, 2t+9 (low half = lower row); col g
        row = 2 * t + 8 * breg
        o4 = out.view(nt_n, 64, kt_n, 16)  # [nt, column in tile, kt, row in tile]
        o4[:, col, :, row] = lo.permute(2, 0, 1)  # advanced indices (lane) first: [32, nt, kt]
        o4[:, col, :, row + 1] = hi.permute(2, 0, 1)
    assert int(out.min()) >= 0, "some code position was never written"
    return out


def unrepack_group_values(s: torch.Tensor) -> torch.Tensor:
    """[G, N/64, 8, 8] -> [N, G]: lane group g reads entry 2j+h for column 16j + 8h + g."""
    gcount, nt_n = s.shape[0], s.shape[1]
    out = torch.empty(nt_n * 64, gcount, dtype=s.dtype)
    for g in range(8):
        for n8 in range(8):
            out[torch.arange(nt_n) * 64 + 8 * n8 + g] = s[:, :, g, n8].t()
    return out


def emulate_gemm(x: torch.Tensor, rep, zero_offset: int) -> torch.Tensor:
    """Replay the kernel on CPU from a ``repack.Repacked``: x [M, K] (original channel order) -> [M, N] float64."""
    return emulate_tiles(x, rep.w, rep.s, zm=rep.zm, tile_group=rep.tile_group, kidx=rep.kidx,
                         group_k=rep.group_k, zero_offset=zero_offset)


def emulate_tiles(x, w, s, *, zm=None, tile_group=None, kidx=None, col_scale=None, group_k, fmt=0,
                  zero_offset=0) -> torch.Tensor:
    """The kernel's arithmetic in float64 from its tensors (what ``runtime.run`` passes the binding)."""
    from qlinear.formats.codes import e2m1_decode, e4m3_decode

    xg = x.double()
    if kidx is not None:
        xg = xg[:, kidx]
    bits = w.shape[-1]
    codes = unrepack_codes(w)  # [N, Kp]
    n, kp = codes.shape
    sc = unrepack_group_values(s).double()  # [N, G]
    tiles = torch.arange(kp) // 16
    grp = tile_group.long()[tiles] if tile_group is not None else (torch.arange(kp) // group_k)
    if fmt == 1:  # float codes: E2M1 (4-bit) / E4M3 (8-bit), placed into s.dtype: value * 2^-bias (fp_raw)
        vals = e2m1_decode(codes.to(torch.uint8), torch.float64) if bits == 4 else e4m3_decode(codes.to(torch.uint8), torch.float64)
        bias = (15 if s.dtype == torch.float16 else 127) - (1 if bits == 4 else 7)
        wd = vals * 2.0 ** -bias * sc[:, grp]
    elif zm is not None:
        off = unrepack_group_values(zm).double()[:, grp]  # zero_offset + z
        wd = ((codes.double() + zero_offset) - off) * sc[:, grp]
    else:
        wd = (codes.double() - (1 << (bits - 1))) * sc[:, grp]
    out = xg @ wd.t()
    if col_scale is not None:
        out = out * col_scale.double()
    return out


def unrepack_codes_as_a(w: torch.Tensor) -> torch.Tensor:
    """4-bit int32 [N/64, Kp/16, 32, 4] -> codes [N, Kp], read the way the decode kernel (mp_decode.cuh)
    reads them: word j of lane (g, t) is the mma.m16n8k16 A fragment of output columns 16j..16j+15 x 16 k,
    a0 = (row g, k 2t, 2t+1), a1 = (row g+8, k 2t..), a2 = (row g, k 2t+8..), a3 = (row g+8, k 2t+8..),
    taken from the word at shifts 0, 8, 4, 12 (low half = the lower k)."""
    nt_n, kt_n, _, bits = w.shape
    assert bits == 4
    out = torch.full((nt_n * 64, kt_n * 16), -1, dtype=torch.int64)
    words = w.to(torch.int64) & 0xFFFFFFFF
    g, t = _lane_coords()
    o4 = out.view(nt_n, 64, kt_n, 16)
    for j in range(4):
        for a, sh in enumerate((0, 8, 4, 12)):
            row = 16 * j + g + 8 * (a % 2)  # the A row is an output column
            k = 2 * t + 8 * (a // 2)
            lo = (words[:, :, :, j] >> sh) & 0xF
            hi = (words[:, :, :, j] >> (sh + 16)) & 0xF
            o4[:, row, :, k] = lo.permute(2, 0, 1)
            o4[:, row, :, k + 1] = hi.permute(2, 0, 1)
    assert int(out.min()) >= 0, "some code position was never written"
    return out


def emulate_decode(x: torch.Tensor, rep, magic: int) -> torch.Tensor:
    """The decode kernel's arithmetic in float64: per scale group, sum x * (MAGIC + code) and sum x,
    then s * (first - (MAGIC + zero) * second), added over groups. x [M, K] in original order."""
    xg = x.double()
    if rep.kidx is not None:
        xg = xg[:, rep.kidx]
    codes = unrepack_codes_as_a(rep.w)
    n, kp = codes.shape
    sc = unrepack_group_values(rep.s).double()
    off = unrepack_group_values(rep.zm).double() if rep.zm is not None else torch.full_like(sc, magic + 8.0)
    tiles = torch.arange(kp) // 16
    grp = rep.tile_group.long()[tiles] if rep.tile_group is not None else torch.arange(kp) // rep.group_k
    out = torch.zeros(xg.shape[0], n, dtype=torch.float64)
    for gi in grp.unique().tolist():
        cols = (grp == gi).nonzero().flatten()
        a = xg[:, cols] @ (magic + codes[:, cols].double()).t()  # [M, N]
        xs = xg[:, cols].sum(1, keepdim=True)  # [M, 1]
        out += sc[:, gi] * (a - off[:, gi] * xs)
    return out
