"""W4A16 on Intel GPUs through torch's XPU int4 ops (oneDNN): ``_convert_weight_to_int4pack`` once at
load, ``_weight_int4pack_mm_with_scales_and_zeros`` per call (layouts in ``int4_layout``).

Accepts: 4-bit weights (uint4b8, or uint4 with zero points), fp16/bf16 activations, groups of 32,
64, 128 or 256 (oneDNN's grouped int4 path; per-channel layers are not offered), no act-order,
N and K multiples of 8. Bias is added after the GEMM. UNVERIFIED on hardware.
"""

from __future__ import annotations

import torch

from qlinear.formats.int_pack import unpack_along
from qlinear.kernel import MPLinearKernel
from qlinear.scalar_type import scalar_types

from . import library
from .int4_layout import to_xpu_int4

GROUPS = (32, 64, 128, 256)
UNVERIFIED = "unverified on hardware (no Intel GPU in this project's CI)"


class XpuW4A16LinearKernel(MPLinearKernel):
    provider = "xpu"
    backend = "xpu"
    priority = 25
    notes = UNVERIFIED
    quantizes_activation = False

    @classmethod
    def is_supported(cls, platform=None):
        return library.xpu_gate(platform, ("_weight_int4pack_mm_with_scales_and_zeros", "_convert_weight_to_int4pack"))

    @classmethod
    def can_implement(cls, c):
        if c.weight_type not in (scalar_types.uint4b8, scalar_types.uint4):
            return False, f"weight type {c.weight_type.name} is not 4-bit (uint4b8 / uint4 + zero points)"
        if c.act_type not in (torch.float16, torch.bfloat16):
            return False, f"activations must be fp16/bf16, got {c.act_type}"
        if c.has_g_idx:
            return False, "act-order (g_idx) is not supported"
        if c.group_size not in GROUPS:
            return False, f"group size {c.group_size} is not one of {GROUPS} (oneDNN's grouped int4 GEMM)"
        if c.K % c.group_size or c.K % 8 or c.N % 8:
            return False, f"K={c.K} must be a multiple of the group and of 8, N={c.N} of 8"
        return True, None

    def process_weights_after_loading(self, layer):
        c = self.config
        w_q, w_s, w_zp, _ = self._get_weight_params(layer)
        zp = unpack_along(w_zp.data, 4, 0)[: c.N] if w_zp is not None else None  # [N, G] codes
        u8, scale, zeros = to_xpu_int4(w_q.data, w_s.data, zp, c.act_type)
        packed = library.aten("_convert_weight_to_int4pack")(u8, 8)
        self.replace_parameter(layer, self.w_q_name, packed)
        self.replace_parameter(layer, self.w_s_name, scale)
        layer.register_buffer("xpu_w_zeros", zeros)  # int8 [G, N]; the packed zero points are no longer read

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        x2 = x.reshape(-1, x.shape[-1]).contiguous()
        out = library.aten("_weight_int4pack_mm_with_scales_and_zeros")(
            x2, getattr(layer, self.w_q_name), c.group_size, getattr(layer, self.w_s_name), layer.xpu_w_zeros)
        out = out.to(c.out_type or x.dtype)
        if bias is not None:
            out = out + bias.to(out.dtype)
        return out.reshape(*x.shape[:-1], c.N)
