"""CutlassNvFp4WeightOnlyLinearKernel / CutlassMxFp4WeightOnlyLinearKernel: NVFP4 and MXFP4 weights x
bf16 / fp16 activations (weight-only, W4A16) on Hopper tensor cores.

The W4A16 mixed-input GEMM (``csrc/w4a16.cuh``, the same TMA warp-specialized mainloop, tiles and
stream-K) on E2M1 codes: ``csrc/w4a16_fp4.cuh`` hands CUTLASS one packet of group scales per (weight
row, 64-deep K tile), 4 for NVFP4 (a scale per 16 k), 2 for MXFP4 (per 32), and decodes each 16-deep
k-block with its group's scale. At load the codes are re-laid into the W4A16 order as they are, the
group scales (E4M3 / E8M0, exact in 16 bits) stored times a power of two (``code_scales``: the E2M1
bits are placed into the 16-bit type without arithmetic, which leaves 2^-bias out), and the fp32
epilogue multiplies by that power of two back (and NVFP4's 1 / global scale). No dequantized weight is
ever written. Wide tiles and tensor cores make it the format's kernel from M ~ 32 up; at M <= 16
marlin's decode kernel streams half the bytes per weight (a measured table decides per layer).

Like every weight-only FP4 kernel here it does not quantize the activation
(``quantizes_activation = False``: the conformance kit compares against the weight-only reference).
Refused with a reason: MXFP4 with float16 activations (E8M0 scales do not fit), N not a multiple of
16, K not a multiple of 64 (the K tile), an output dtype other than the activation's.
"""

from __future__ import annotations

import torch

from qlinear import kernel as K
from qlinear.families import act_dtype, out_dtype
from qlinear.formats.codes import code_scales, e8m0_decode, unpack_fp4

from . import configs
from .gates import CutlassKernelMixin
from .w4a16_layout import K_TILE, sub_scale_table, weight_fp4

ACT_DTYPES = (torch.bfloat16, torch.float16)


class _CutlassFp4Weights(CutlassKernelMixin):
    """Mixin: re-lay E2M1 codes and group scales once; run ``fp4_mm`` with the group and alpha."""

    priority = 14  # below marlin's weight-only FP4 (15) until a measured table decides per M
    quantizes_activation = False
    notes = "JIT-compiles its CUDA extension (CUTLASS mixed-input, sm_90a) when the first layer loads"
    GROUP = 16
    table_version = 1

    @classmethod
    def can_implement(cls, c):
        dt = act_dtype(c)
        if dt not in ACT_DTYPES:
            return False, f"activation dtype {dt} is not bfloat16/float16"
        od = out_dtype(c)
        if od is not None and od != dt:
            return False, f"out dtype {od} differs from the activation dtype (the epilogue writes {dt})"
        n, k = c.weight_shape
        if n % 16:
            return False, f"N={n} must be a multiple of 16 (the weight reorder atom and 16-byte output rows)"
        if k % K_TILE:
            return False, f"K={k} must be a multiple of {K_TILE} (the GEMM's K tile)"
        return True, None

    def _install(self, layer, codes: torch.Tensor, s32: torch.Tensor, factor: float) -> None:
        """codes [N, K] (E2M1, uint8 0..15), s32 [N, K/GROUP] fp32 group scales, factor: an fp32 factor on
        the sums (NVFP4's 1 / global scale, else 1)."""
        from .build import load

        dt = act_dtype(self.config)
        n, k = self.config.weight_shape
        if tuple(codes.shape) != (n, k):
            raise ValueError(f"weight.shape: unpacks to {tuple(codes.shape)}, expected ({n}, {k})")
        if tuple(s32.shape) != (n, k // self.GROUP):
            raise ValueError(f"weight_scale.shape: expected ({n}, {k // self.GROUP}), got {tuple(s32.shape)}")
        stored, power = code_scales(s32.float(), dt, 4)
        self.replace_parameter(layer, "weight", weight_fp4(codes))
        self.replace_parameter(layer, "weight_scale", sub_scale_table(stored, self.GROUP, dt))
        self._alpha = float(factor) * power
        self._ext = load(f"fp4-{'bf16' if dt == torch.bfloat16 else 'fp16'}")  # build here, never in apply

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        dt = act_dtype(c)
        n, k = c.weight_shape
        if x.dtype != dt:
            raise ValueError(f"x.dtype: expected {dt} (the layer's activation dtype), got {x.dtype}")
        x2 = x.reshape(-1, k)
        m = x2.shape[0]
        out = torch.empty((m, n), dtype=dt, device=x.device)
        if not m:
            return out.reshape(*x.shape[:-1], n)
        if x2.stride(-1) != 1 or x2.stride(0) % 8 or x2.data_ptr() % 16:
            x2 = x2.contiguous() if x2.stride(-1) != 1 or x2.stride(0) % 8 else x2.clone()
        if bias is not None:
            bias = bias.to(dt).contiguous()
        tile = configs.w4a16_forced()
        self._ext.fp4_mm(out, x2, layer.weight, layer.weight_scale, bias, self.GROUP,
                         configs.w4a16_tile_for(m, n) if tile is None else tile, self._alpha)
        return out.reshape(*x.shape[:-1], n)


class CutlassNvFp4WeightOnlyLinearKernel(_CutlassFp4Weights, K.NvFp4LinearKernel):
    """NVFP4 weights (E2M1, E4M3 scales per 16, fp32 global scale), 16-bit activations (W4A16)."""

    GROUP = 16

    def process_weights_after_loading(self, layer):
        n, k = self.config.weight_shape
        w = layer.weight.data
        if w.dtype != torch.uint8 or tuple(w.shape) != (n, k // 2):
            raise ValueError(f"weight: expected uint8 [{n}, {k // 2}] (two E2M1 codes per byte), got {w.dtype} {tuple(w.shape)}")
        gs = layer.weight_global_scale.data.float().reshape(())
        if not bool(torch.isfinite(gs)) or float(gs) == 0.0:
            raise ValueError(f"weight_global_scale: expected a finite non-zero scale, got {float(gs)}")
        self._install(layer, unpack_fp4(w), layer.weight_scale.data.float(), 1.0 / float(gs))


class CutlassMxFp4WeightOnlyLinearKernel(_CutlassFp4Weights, K.MxFp4LinearKernel):
    """MXFP4 weights (E2M1, E8M0 scales per 32), bfloat16 activations (W4A16); float16 activations are
    refused with a reason (the E8M0 scale range does not fit float16)."""

    GROUP = 32

    @classmethod
    def can_implement(cls, c):
        if act_dtype(c) == torch.float16:
            return False, "float16 activations cannot hold E8M0 scales (2^-127..2^127) exactly; this kernel needs bfloat16"
        return super().can_implement(c)

    def process_weights_after_loading(self, layer):
        n, k = self.config.weight_shape
        w, sc = layer.weight.data, layer.weight_scale.data
        if w.dtype != torch.uint8 or tuple(w.shape) != (n, k // 2):
            raise ValueError(f"weight: expected uint8 [{n}, {k // 2}] (two E2M1 codes per byte), got {w.dtype} {tuple(w.shape)}")
        if tuple(sc.shape) != (n, k // 32):
            raise ValueError(f"weight_scale.shape: expected ({n}, {k // 32}), got {tuple(sc.shape)}")
        if bool((sc.to(torch.int32) == 255).any()):
            raise ValueError("weight_scale: E8M0 code 255 (NaN) in a weight scale")
        self._install(layer, unpack_fp4(w), e8m0_decode(sc), 1.0)


KERNELS = [CutlassNvFp4WeightOnlyLinearKernel, CutlassMxFp4WeightOnlyLinearKernel]
