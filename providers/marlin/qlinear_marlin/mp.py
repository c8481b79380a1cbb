"""MarlinMPLinearKernel: W4A16 / W8A16 (GPTQ uint4b8 / uint8b128, AWQ-style uint4 / uint8 + zero points)
on our JIT-built CUDA kernel.

Load time: unpack the compressed-tensors parameters, sort K by g_idx for act-order (padding each
group to 16 rows), repack into the kernel's tile layout (``repack.py``). Run time: gather the
activation along K for act-order, then one kernel launch (split-K reduction included). The CUDA
extension is built (or loaded from the cache) at load time, never by a call.
"""

from __future__ import annotations

import torch

from qlinear import kernel as K
from qlinear.config import MPLinearLayerConfig
from qlinear.formats.int_pack import unpack_along
from qlinear.scalar_type import scalar_types

from . import gates, runtime
from .repack import TILE_K, TILE_N, repack_wna16


class MarlinMPLinearKernel(K.MPLinearKernel):
    provider = "marlin"
    backend = "marlin"
    priority = 50
    # Deterministic (K slices are reduced in a fixed order, no atomics), but the slice count follows M
    # (choose_splits in marlin_mp.cuh), so a row's summation order depends on the batch around it.
    batch_invariant = False
    quantizes_activation = False
    min_capability = gates.MIN_CAPABILITY
    # From this many rows on, dequantize the tiles to a dense 16-bit weight (our kernel) and run a dense
    # GEMM (cuBLAS): the W4A16 kernel re-reads and re-dequantizes the weight for every 64 rows.
    dequant_min_m: int = runtime.DEQUANT_MIN_M
    # Up to this many rows 4-bit codes run the decode kernel (csrc/mp_decode.cuh), not the tile kernel.
    decode_max_m: int = runtime.DECODE_MAX_M

    @classmethod
    def is_supported(cls, platform=None):
        return gates.cuda_verdict(platform)

    @classmethod
    def can_implement(cls, c: MPLinearLayerConfig):
        if not isinstance(c, MPLinearLayerConfig):
            return False, f"expects an MPLinearLayerConfig, got {type(c).__name__}"
        if c.weight_type not in (scalar_types.uint4b8, scalar_types.uint4, scalar_types.uint8b128, scalar_types.uint8):
            return False, f"weight_type {c.weight_type.name}: only uint4b8/uint8b128 (GPTQ) and uint4/uint8 + zero points are built"
        if c.act_type not in (torch.float16, torch.bfloat16):
            return False, f"act_type {c.act_type}: needs float16 or bfloat16 activations"
        if c.N % TILE_N:
            return False, f"N={c.N} is not a multiple of {TILE_N} (the kernel's column tile)"
        if c.K % TILE_K:
            return False, f"K={c.K} is not a multiple of {TILE_K} (the mma k step)"
        if not c.has_g_idx and c.group_size != -1 and c.group_size % TILE_K:
            return False, f"group_size={c.group_size} is not a multiple of {TILE_K} (one group per k tile)"
        return True, None

    # ---- load time ---------------------------------------------------------------------------
    def process_weights_after_loading(self, layer: torch.nn.Module) -> None:
        c = self.config
        wq, ws, wzp, gidx = self._get_weight_params(layer)
        runtime.prepare(wq.device)  # build the extension now: never in a call, never in a capture
        codes = unpack_along(wq.data, c.bits, 1)  # [N, K]
        if tuple(codes.shape) != (c.N, c.K):
            raise ValueError(f"{self.w_q_name}.shape: expected [{c.N}, {c.K // c.pack_factor}] int32, got {tuple(wq.shape)}")
        scales = ws.data
        if scales.dim() != 2 or scales.shape[0] != c.N:
            raise ValueError(f"{self.w_s_name}.shape: expected [{c.N}, G], got {tuple(scales.shape)}")
        zeros = None
        if c.zero_points:
            zeros = unpack_along(wzp.data, c.bits, 0)[: c.N]
            if zeros.shape != scales.shape:
                raise ValueError(f"{self.w_zp_name}.shape: unpacks to {tuple(zeros.shape)}, scales are {tuple(scales.shape)}")
        if c.has_g_idx and gidx is None:
            raise ValueError(f"{self.w_gidx_name}: the config has act-order (g_idx) but the layer has no such parameter")
        g = gidx.data if c.has_g_idx else None
        r = repack_wna16(codes, scales, zeros, g, c.group_size, c.act_type, c.bits)
        self.replace_parameter(layer, self.w_q_name, r.w)
        self.replace_parameter(layer, self.w_s_name, r.s)
        if c.zero_points:
            self.replace_parameter(layer, self.w_zp_name, r.zm)
        if c.has_g_idx and getattr(layer, self.w_gidx_name, None) is not None:
            # the kernel reads the group of each k tile; g_idx itself is not needed any more. Empty
            # when the sorted groups are plain groups of group_k rows (no per-tile lookup).
            tg = r.tile_group if r.tile_group is not None else torch.empty(0, dtype=torch.int32, device=r.w.device)
            self.replace_parameter(layer, self.w_gidx_name, tg)
        # a buffer, so module.to(device) moves it with the weights
        layer.register_buffer("qlinear_marlin_kidx", r.kidx, persistent=False)
        layer.qlinear_marlin_group_k = r.group_k

    # ---- run time ----------------------------------------------------------------------------
    def tile_group(self, layer: torch.nn.Module) -> torch.Tensor | None:
        """The group of each k tile (act-order with uneven groups), or None."""
        tg = getattr(layer, self.w_gidx_name) if self.config.has_g_idx else None
        return tg if tg is not None and tg.numel() else None

    def apply_weights(self, layer: torch.nn.Module, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        c = self.config
        return runtime.run(
            x, c.N, getattr(layer, self.w_q_name), getattr(layer, self.w_s_name),
            zm=getattr(layer, self.w_zp_name) if c.zero_points else None,
            tile_group=self.tile_group(layer),
            kidx=layer.qlinear_marlin_kidx, group_k=layer.qlinear_marlin_group_k, fmt=runtime.INT_CODES,
            bias=bias, dequant_min_m=self.dequant_min_m, decode_max_m=self.decode_max_m, out_dtype=c.out_type)
