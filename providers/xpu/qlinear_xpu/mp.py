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


class XpuKernelsW4A16LinearKernel(MPLinearKernel):
    """W4A16 through vllm-xpu-kernels' ``_xpu_C.int4_gemm_w4a16(A, B, bias, B_scale, B_zp, group_size,
    g_idx)`` (oneDNN), laid out as vLLM's XPUwNa16LinearKernel does for compressed-tensors:
    B is the [K/8, N] transposed view of ``weight_packed`` int32 [N, K/8] (codes unchanged),
    B_scale [G, N], B_zp the scalar int8 8 of uint4b8, g_idx the layer's [K] group map as loaded.
    Unlike the torch-op kernel it takes act-order (g_idx) and per-channel layers. Zero-point (uint4)
    layers are left to ``XpuW4A16LinearKernel``: vLLM's own transpose of packed zero points for this
    op carries a FIXME, so the layout is not taken on trust. Gated on the package. UNVERIFIED on hardware.
    """

    provider = "xpu"
    backend = "xpu"
    priority = 26
    notes = UNVERIFIED
    quantizes_activation = False

    @classmethod
    def is_supported(cls, platform=None):
        return library.kernels_gate(platform)

    @classmethod
    def can_implement(cls, c):
        if c.weight_type != scalar_types.uint4b8:
            return False, f"weight type {c.weight_type.name} is not uint4b8 (zero-point layers go to XpuW4A16LinearKernel)"
        if c.act_type not in (torch.float16, torch.bfloat16):
            return False, f"activations must be fp16/bf16, got {c.act_type}"
        if c.group_size != -1 and c.group_size % 32:
            return False, f"group size {c.group_size} is not -1 or a multiple of 32"
        if c.K % 32 or c.N % 8:
            return False, f"K={c.K} must be a multiple of 32 and N={c.N} of 8"
        return True, None

    def process_weights_after_loading(self, layer):
        w_q, w_s, _, w_g = self._get_weight_params(layer)
        self.replace_parameter(layer, self.w_q_name, w_q.data.contiguous())  # int32 [N, K/8], passed as its .t()
        self.replace_parameter(layer, self.w_s_name, w_s.data.to(self.config.act_type).t().contiguous())  # [G, N]
        layer.register_buffer("xpu_w_zp", torch.tensor([8], dtype=torch.int8, device=w_q.device))
        if w_g is not None:
            self.replace_parameter(layer, self.w_gidx_name, w_g.data.to(torch.int32).contiguous())

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        w_q, w_s, _, w_g = self._get_weight_params(layer)
        x2 = x.reshape(-1, x.shape[-1]).contiguous()
        b = None if bias is None else bias.to(x.dtype)
        out = library.xpu_op("int4_gemm_w4a16")(x2, w_q.t(), b, w_s, layer.xpu_w_zp, c.group_size, w_g)
        return out.to(c.out_type or x.dtype).reshape(*x.shape[:-1], c.N)
