"""W4A16 over fbgemm's ``bf16i4bf16_rowwise(X bf16 [M,K], WQ int8 [N,K/2], w_scale [G,N], w_zp [G,N])``
(CUTLASS sm_90a mixed-input GEMM, bf16 output), from the compressed-tensors layout converted once
at load time (``int4_layout``).

Limits (fbgemm's kernel): bf16 activations only (A is ``cutlass::bfloat16_t``); 4-bit weights
(uint4b8, or uint4 with zero points); no act-order; the CUTLASS mixed-input mainloop needs the
group to be a whole number of K tiles (128 in its small-M config), so group % 128 == 0, and
per-channel (group -1) when K % 128 == 0; N % 8 for the 16-byte bf16 output rows.

W4A8 (``f8i4bf16_rowwise``: FP8 activations, same int4 layout) is not offered: the MP family's
config only allows 16-bit activations, and quantizing them to FP8 behind the layer's back would
change its numerics beyond the W4A16 tolerance. It needs an MP config with an FP8 act_type.
"""

from __future__ import annotations

import torch

from qlinear.formats.int_pack import unpack_along
from qlinear.kernel import MPLinearKernel
from qlinear.scalar_type import scalar_types

from .int4_layout import to_fbgemm_int4
from .library import cuda_gate, op


class FbgemmW4A16LinearKernel(MPLinearKernel):
    provider = "fbgemm"
    backend = "fbgemm"
    priority = 25
    min_capability = 90

    @classmethod
    def is_supported(cls, platform=None):
        return cuda_gate(platform, ("bf16i4bf16_rowwise",), capabilities=(90,), what="fbgemm bf16i4bf16_rowwise (sm_90a)")

    @classmethod
    def can_implement(cls, c):
        if c.weight_type not in (scalar_types.uint4b8, scalar_types.uint4):
            return False, f"weight type {c.weight_type.name} is not 4-bit (uint4b8 / uint4 + zero points)"
        if c.act_type != torch.bfloat16:
            return False, f"activations must be bfloat16 (fbgemm's A operand), got {c.act_type}"
        if c.has_g_idx:
            return False, "act-order (g_idx) is not supported"
        g = c.effective_group_size
        if g % 128:
            return False, f"group size {c.group_size} (K={c.K}) must be a multiple of 128 (CUTLASS mixed-input K tile)"
        if c.N % 8:
            return False, f"N={c.N} must be a multiple of 8"
        return True, None

    def process_weights_after_loading(self, layer):
        w_q, w_s, w_zp, _ = self._get_weight_params(layer)
        zp = unpack_along(w_zp.data, 4, 0)[: self.config.N] if w_zp is not None else None  # [N, G] codes
        wq, scale, zero = to_fbgemm_int4(w_q.data, w_s.data, zp)
        self.replace_parameter(layer, self.w_q_name, wq)
        self.replace_parameter(layer, self.w_s_name, scale)
        layer.register_buffer("fbgemm_w_zp", zero)  # the zero term q*s + zp; the packed zero points are no longer used

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        x2 = x.reshape(-1, x.shape[-1]).contiguous()
        out = op("bf16i4bf16_rowwise")(x2, getattr(layer, self.w_q_name), getattr(layer, self.w_s_name), layer.fbgemm_w_zp)
        out = out.to(c.out_type or x.dtype)
        if bias is not None:
            out = out + bias.to(out.dtype)
        return out.reshape(*x.shape[:-1], c.N)
