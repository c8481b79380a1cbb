"""Weight-only (W8A16 / W4A16) Marlin kernels for the float weight formats: FP8 (per-tensor/channel
and 128x128 block scales), NVFP4, MXFP4, MXFP8. The activation stays 16-bit, so these kernels do NOT
reproduce the formats' activation quantization: ``quantizes_activation = False`` (the conformance kit
then compares against the weight-only reference). Useful where the GPU has no FP8/FP4 tensor cores,
or to skip the activation quantization's error.

Decoding: the code's bits placed into the 16-bit type (exact) times one group scale per (column, K
block) in the activation dtype, which carries the power of two that placement leaves out
(``code_scales``); an fp32 per-column factor is applied to the fp32 sums (per-tensor/channel FP8 scales,
NVFP4's global scale, that power of two back). Up to 16 rows the decode kernel streams the weight
(csrc/mp_decode_scaled.cuh), above that the tile kernel or, from ``dequant_min_m`` rows, a dense GEMM.
"""

from __future__ import annotations

import torch

from qlinear import kernel as K
from qlinear.families import act_dtype, out_dtype
from qlinear.formats.codes import FP_PLACEMENT_BIAS, code_scales, mx_weight_scales, unpack_fp4

from . import gates, runtime
from .repack import TILE_K, TILE_N, repack_codes, repack_group_values

_16BIT = (torch.float16, torch.bfloat16)


# Codes placed into the 16-bit type (csrc/marlin_mp.cuh fp_raw) and their scales: qlinear.formats.codes.
_FP_BIAS = FP_PLACEMENT_BIAS


class _MarlinFloatWeights:
    """Mixin: repack float codes + group scales once; run the tile kernel with fmt=float."""

    provider = "marlin"
    backend = "marlin"
    priority = 15  # weight-only: below native W8A8/FP4 kernels, far above emulation
    batch_invariant = False
    quantizes_activation = False
    min_capability = gates.MIN_CAPABILITY
    dequant_min_m: int = runtime.DEQUANT_MIN_M
    BITS = 8

    @classmethod
    def is_supported(cls, platform=None):
        return gates.cuda_verdict(platform)

    @classmethod
    def _check_shape(cls, c):
        n, k = c.weight_shape
        if act_dtype(c) not in _16BIT:
            return False, f"activation dtype {act_dtype(c)}: needs float16 or bfloat16"
        if n % TILE_N:
            return False, f"N={n} is not a multiple of {TILE_N} (the kernel's column tile)"
        if k % TILE_K:
            return False, f"K={k} is not a multiple of {TILE_K} (the mma k step)"
        return True, None

    def _install(self, layer, weight_name: str, scale_name: str, codes: torch.Tensor, s32: torch.Tensor,
                 group_k: int, col_scale: torch.Tensor | None) -> None:
        """codes [N, K] (uint8, float-format bit patterns), s32 [N, G] fp32 group scales."""
        runtime.prepare(codes.device)  # build the extension now: never in a call, never in a capture
        dt = act_dtype(self.config)
        n, k = self.config.weight_shape
        if tuple(codes.shape) != (n, k):
            raise ValueError(f"{weight_name}.shape: unpacks to {tuple(codes.shape)}, expected ({n}, {k})")
        s16, factor = code_scales(s32.float(), dt, self.BITS)
        if factor != 1.0:
            col_scale = (col_scale if col_scale is not None else torch.ones(n, device=codes.device)) * factor
        self.replace_parameter(layer, weight_name, repack_codes(codes, self.BITS))
        self.replace_parameter(layer, scale_name, repack_group_values(s16))
        if col_scale is not None:
            col_scale = col_scale.float().reshape(-1).expand(n).contiguous()
        layer.register_buffer("qlinear_marlin_col_scale", col_scale, persistent=False)
        layer.qlinear_marlin_group_k = group_k
        self._names = (weight_name, scale_name)

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        dt = act_dtype(c)
        if x.dtype == torch.float8_e4m3fn:  # an already-quantized activation: back to 16 bits
            xs = getattr(layer, "input_scale", None)
            if xs is None:
                raise ValueError("x.dtype: an FP8 activation needs the layer's input_scale to return to 16 bits")
            x = (x.float() * xs.float()).to(dt)
        wname, sname = self._names
        return runtime.run(x, c.weight_shape[0], getattr(layer, wname), getattr(layer, sname),
                           col_scale=layer.qlinear_marlin_col_scale, group_k=layer.qlinear_marlin_group_k,
                           fmt=runtime.FLOAT_CODES, bias=bias, dequant_min_m=self.dequant_min_m, out_dtype=out_dtype(c))


class MarlinFP8ScaledMMLinearKernel(_MarlinFloatWeights, K.FP8ScaledMMLinearKernel):
    """FP8 E4M3 weights with per-tensor or per-channel fp32 scales, 16-bit activations (W8A16)."""

    @classmethod
    def can_implement(cls, c):
        if c.family != "fp8":
            return False, f"family {c.family}: this kernel takes per-tensor/per-channel FP8"
        return cls._check_shape(c)

    def process_weights_after_loading(self, layer):
        n, k = self.config.weight_shape
        w = layer.weight.data.t().contiguous()  # stored [K, N] (a transposed view of [N, K])
        ws = layer.weight_scale.data.float().reshape(-1)
        if ws.numel() not in (1, n):
            raise ValueError(f"weight_scale.shape: expected [1] or [{n}, 1], got {tuple(layer.weight_scale.shape)}")
        ones = torch.ones(n, 1, device=w.device)
        self._install(layer, "weight", "weight_scale", w.view(torch.uint8), ones, k, ws)


class MarlinFp8BlockScaledMMLinearKernel(_MarlinFloatWeights, K.Fp8BlockScaledMMLinearKernel):
    """FP8 E4M3 weights with 128x128 block scales, 16-bit activations (W8A16; the activation is not
    quantized in 1x128 groups, unlike the format's W8A8 reference)."""

    apply_input_quant = False

    @classmethod
    def can_implement(cls, c):
        if c.family != "fp8_block" or c.weight_block != (128, 128):
            return False, f"needs 128x128 FP8 weight blocks, got family {c.family}"
        return cls._check_shape(c)

    def process_weights_after_loading(self, layer):
        n, k = self.config.weight_shape
        name = "weight_scale_inv" if getattr(layer, "weight_scale_inv", None) is not None else "weight_scale"
        s = getattr(layer, name).data.float()
        if tuple(s.shape) != ((n + 127) // 128, (k + 127) // 128):
            raise ValueError(f"{name}.shape: expected {((n + 127) // 128, (k + 127) // 128)}, got {tuple(s.shape)}")
        s32 = s.repeat_interleave(128, 0)[:n]  # [N, ceil(K/128)]: the block row's scale for every column
        self._install(layer, "weight", name, layer.weight.data.contiguous().view(torch.uint8), s32, 128, None)


class MarlinNvFp4LinearKernel(_MarlinFloatWeights, K.NvFp4LinearKernel):
    """NVFP4 weights (E2M1, E4M3 scales per 16, fp32 global scale), 16-bit activations (W4A16).
    The E4M3 block scales are exact in fp16/bf16; 1/global_scale is applied to the fp32 sums."""

    BITS = 4

    @classmethod
    def can_implement(cls, c):
        return cls._check_shape(c)

    def process_weights_after_loading(self, layer):
        n, k = self.config.weight_shape
        codes = unpack_fp4(layer.weight.data)
        s32 = layer.weight_scale.data.float()  # E4M3 -> exact fp32
        if tuple(s32.shape) != (n, k // 16):
            raise ValueError(f"weight_scale.shape: expected ({n}, {k // 16}), got {tuple(s32.shape)}")
        gs = layer.weight_global_scale.data.float().reshape(())
        cs = (1.0 / gs).expand(n)
        self._install(layer, "weight", "weight_scale", codes, s32, 16, cs)


class _MarlinMx(_MarlinFloatWeights):
    @classmethod
    def can_implement(cls, c):
        if c.act_dtype == torch.float16:
            return False, ("float16 activations cannot hold E8M0 scales (2^-127..2^127) exactly; "
                           "this weight-only kernel needs bfloat16")
        return cls._check_shape(c)

    def _mx_install(self, layer, codes):
        n, k = self.config.weight_shape
        self._install(layer, "weight", "weight_scale", codes, mx_weight_scales(layer.weight_scale.data, n, k), 32, None)


class MarlinMxFp4LinearKernel(_MarlinMx, K.MxFp4LinearKernel):
    """MXFP4 weights (E2M1, E8M0 scales per 32), bfloat16 activations (W4A16)."""

    BITS = 4

    def process_weights_after_loading(self, layer):
        self._mx_install(layer, unpack_fp4(layer.weight.data))


class MarlinMxfp8LinearKernel(_MarlinMx, K.Mxfp8LinearKernel):
    """MXFP8 weights (E4M3, E8M0 scales per 32), bfloat16 activations (W8A16). float16 activations are
    refused with a reason (the E8M0 scale range does not fit float16)."""

    def process_weights_after_loading(self, layer):
        self._mx_install(layer, layer.weight.data.contiguous().view(torch.uint8))


KERNELS = [MarlinFP8ScaledMMLinearKernel, MarlinFp8BlockScaledMMLinearKernel, MarlinNvFp4LinearKernel,
           MarlinMxFp4LinearKernel, MarlinMxfp8LinearKernel]
