"""Run time shared by every marlin kernel class: activation gather, path choice, one extension call."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qlinear.platform import cuda_has_pdl, cuda_sm_count
from qlinear.settings import env_int
from qlinear.streams import split_k_workspace

from .repack import TILE_N

INT_CODES, FLOAT_CODES = 0, 1  # the binding's ``fmt``
# From this many rows on, dequantize the tiles to a dense 16-bit weight (our kernel) and run a dense
# GEMM (cuBLAS): the tile kernel re-reads and re-dequantizes the weight for every 64 rows.
# Measured on the H100 (docs/gpu-results.md, third lease), CUDA graphs, tile kernel vs dequant + cuBLAS:
#   4096x4096:  M=32 17.8 vs 31.7, M=64 28.7 vs 32.0, M=128 35.3 vs 33.5
#   14336x4096: M=32 46.0 vs 113.3, M=64 69.1 vs 113.5, M=128 135.8 vs 114.3
# so the dense path pays from M=128 on at both widths.
DEQUANT_MIN_M = env_int("QLINEAR_MARLIN_DEQUANT_MIN_M", 128, minimum=0)
# Up to this many rows, calls the decode kernels take (decode_applies) run them instead of the tile kernel
# (csrc/mp_decode.cuh, 4-bit integer codes: the weight as the mma's A operand straight from global
# memory, scales folded into the fp32 sums per group; csrc/mp_decode_scaled.cuh, float and 8-bit
# integer codes: the same streaming, each weight pair dequantized as the tile kernel does it);
# 0 turns it off, 16 is the kernels' limit.
# H200 (docs/gpu-results.md, fourth lease): the integer kernel is faster than the tile kernel on every
# Llama-3-8B shape at every M from 1 to 16.
DECODE_MAX_M = min(16, env_int("QLINEAR_MARLIN_DECODE_MAX_M", 16, minimum=0))
# Warps per block of the decode kernel: 0 = the launcher's rule (4 when 8-warp blocks would need more
# than one wave, else 8; csrc/mp_decode.cuh pick_decode_warps), or 4 / 8 (A/B: tools.marlin_decode_sweep).
DECODE_WARPS = env_int("QLINEAR_MARLIN_DECODE_WARPS", 0, minimum=0)
if DECODE_WARPS not in (0, 4, 8):
    raise ValueError(f"QLINEAR_MARLIN_DECODE_WARPS: must be 0, 4 or 8, got {DECODE_WARPS}")
# Stream-K for the 4-bit decode kernel: one wave of blocks shares all (column tile, 128-deep chunk)
# units evenly instead of whole tiles x K slices. Opt-in and slower on every Llama-3-8B shape on the
# H200 (gate_up M=1 22.1 vs 19.0 us: docs/gpu-results.md, sixth lease); kept for A/B on other GPUs
# (tools.marlin_decode_sweep's decode_streamk column).
DECODE_STREAMK = env_int("QLINEAR_MARLIN_DECODE_STREAMK", 0, minimum=0)
# Launch the decode kernel as a programmatic dependent of the kernel before it (Hopper and later):
# its first weight loads overlap that kernel's tail. 0 turns it off (A/B measurements).
PDL = env_int("QLINEAR_MARLIN_PDL", 1, minimum=0)

workspace = split_k_workspace  # fp32 split-K planes and zeroed tile counters, per (device, stream)


def prepare(device: torch.device) -> None:
    """Load time: build (or load) the extension for a layer on ``device``, so no call ever compiles
    (the first call may be inside a CUDA-graph capture). CPU layers (repack tests) need none."""
    if device.type == "cuda":
        from .build import load_extension

        load_extension()


def extension():
    """The built extension; an error, never a build, when load time did not build it."""
    from .build import loaded

    ext = loaded()
    if ext is None:
        raise RuntimeError("marlin: the CUDA extension is not built in this process; the kernel's "
                           "process_weights_after_loading builds it (run that before the first call)")
    return ext


def decode_chunk_tiles(bits: int) -> int:
    """k tiles (of 16) per chunk of the decode kernels (csrc/mp_params.h): 128 bytes of weight per lane."""
    return 8 if bits == 4 else 4


def decode_applies(fmt: int, m: int, bits: int, kp: int, group_k: int, act_order: bool) -> bool:
    """Whether a decode kernel takes the call (csrc/mp_params.h decode_applies, which the binding checks):
    M <= 16 and K in whole chunks; 4-bit integer codes with any groups (act-order too); float codes
    (4 or 8-bit) and 8-bit integer codes in plain groups that divide a chunk or are whole chunks
    (NVFP4 16, MX 32, blocks of 128, per channel)."""
    if m > 16 or bits not in (4, 8) or kp % (16 * decode_chunk_tiles(bits)):
        return False
    if fmt == INT_CODES and bits == 4:
        return True
    ch, tpg = decode_chunk_tiles(bits), group_k // 16
    return not act_order and group_k % 16 == 0 and tpg > 0 and (tpg % ch == 0 or ch % tpg == 0)


def split_planes(device: torch.device, n: int, kp: int) -> int:
    """An upper bound of the K slices the launcher picks (choose_splits in marlin_mp.cuh: resident
    blocks over the output tiles, at most Kp / 256), taking 8 resident blocks per SM and one row
    block; the launcher also keeps its slices within the workspace it is given."""
    return max(1, min(kp // 256, -(-8 * cuda_sm_count(device) // max(1, n // TILE_N))))


def run(x: torch.Tensor, n: int, w: torch.Tensor, s: torch.Tensor, *, zm=None, tile_group=None, kidx=None,
        col_scale=None, group_k: int, fmt: int, bias=None, dequant_min_m: int = DEQUANT_MIN_M,
        decode_max_m: int = DECODE_MAX_M, decode: int | None = None, splits: int = 0,
        pdl: bool | None = None, warps: int | None = None, streamk: bool | None = None,
        out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """x [..., K] (16-bit) -> [..., N] through the tile-layout weight. ``decode`` (None: by
    ``decode_max_m``: 1 the decode kernel, 0 the tile kernel), ``splits`` (0: the launcher's choice),
    ``pdl`` (None: PDL where the GPU has it), ``warps`` (None: DECODE_WARPS) and ``streamk`` (None:
    DECODE_STREAMK) pin the path for sweeps and tests."""
    ext = extension()
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1]).contiguous()
    m = x2.shape[0]
    if kidx is not None and m >= dequant_min_m:  # below, the extension gathers (its own kernel, PDL)
        x2, kidx = x2.index_select(1, kidx), None
    if x2.data_ptr() % 16:  # the kernel copies activations 16 bytes at a time
        x2 = x2.clone(memory_format=torch.contiguous_format)
    if bias is not None and bias.dtype != x2.dtype:
        bias = bias.to(x2.dtype)
    if m >= dequant_min_m:
        dense = ext.mp_dequant(w, s, zm, tile_group, col_scale, group_k, fmt)
        out = F.linear(x2, dense, bias)
    else:
        kp = w.shape[1] * 16  # packed K (act-order: the gathered x's width)
        planes = split_planes(x2.device, n, kp)
        wsp, cnt = workspace(x2.device, planes * m * n, ((m + 7) // 8) * (n // TILE_N))
        decodable = decode_applies(fmt, m, w.shape[-1], kp, group_k, tile_group is not None)
        if decode is None:
            decode = int(decodable and m <= decode_max_m)
        elif decode and not decodable:  # checked here: the binding's own refusal of this call crashed the
            # process on the H200 instead of raising (docs/gpu-results.md, fourth lease)
            raise ValueError(f"decode: the decode kernels take M <= 16, K in whole chunks, 4-bit integer codes, or "
                             f"8-bit integer and 4/8-bit float codes in groups that divide or fill a chunk; got M={m}, "
                             f"{w.shape[-1]}-bit, fmt {fmt}, K={kp}, group_k={group_k}")
        if pdl is None:
            pdl = bool(PDL) and x2.is_cuda and cuda_has_pdl(x2.device)
        out = ext.mp_gemm(x2, w, s, zm, tile_group, bias, col_scale, wsp, cnt, group_k, fmt, decode, splits, int(pdl),
                          kidx, DECODE_WARPS if warps is None else warps,
                          int(bool(DECODE_STREAMK) if streamk is None else streamk))
    if out_dtype is not None and out_dtype != out.dtype:
        out = out.to(out_dtype)
    return out.reshape(*lead, n)
