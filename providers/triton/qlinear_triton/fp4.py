"""NVFP4 and MXFP4 weight-only (W4A16) through the W4A16 kernels (``w4a16_kernels``, FP4 switch).

The activation stays 16-bit (``quantizes_activation = False``: the conformance kit compares with the
format's weight-only reference). The E2M1 codes are re-laid once into the W4A16 block-planar int32
words (``mp.repack_w4``), so the decode GEMV (M <= 2), the tensor-core tiles with split-K and the
dense dequantize + cuBLAS path (large M) are the same kernels as GPTQ's; only the nibble decode
(``_e2m1``, exact through fp16 bits) differs. Scales become bf16 rows [G, N] at load (NVFP4's E4M3
values and MXFP4's powers of two are exact in bf16): 5 / 4.5 bits per weight, as marlin's 16-bit
scales, instead of 4.5 / 4.25 with the bytes, because decoding the bytes in the kernels cost more
instructions than the extra byte saves (sm_90 SASS counts in w4a16_kernels._fp4_factor; by those
counts the FP4 GEMV issues about 2x the integer GEMV's instructions per weight, so it may be
instruction-bound rather than memory-bound: to be measured on the H200).

Per-tensor factors (NVFP4's 1 / global scale, the decodes' power-of-two offsets) are folded on the
host into one fp32 ``alpha`` per path, applied once to the fp32 sums at the end of the GEMV and tile
kernels (and per weight in the dense dequantization); its range is checked at load.
"""

from __future__ import annotations

import math

import torch

from qlinear.settings import env_int

from qlinear import kernel as K
from qlinear.formats.codes import FP8

from .base import TritonKernelMixin
from .mp import repack_w4
from .w4a16_launch import W4A16Launch

_16BIT = (torch.float16, torch.bfloat16)
_OUT = (torch.float16, torch.bfloat16, torch.float32)
NVFP4, MXFP4 = 1, 2  # the kernels' FP4 constexpr
MX_MAX_CODE = 240  # E8M0 codes above: 2^(e - 113), the kernel's factor with the decode's 2^14 in it, overflows fp32


def fp4_words(weight: torch.Tensor, k: int) -> torch.Tensor:
    """uint8 [N, K/2] (element 2i in the low nibble, 2i+1 in the high) -> the kernels' int32
    [Kp/8, N]. Four bytes read as a little-endian int32 hold elements 8w..8w+7 in nibbles 0..7, the
    compressed-tensors K-packed int32 that ``repack_w4`` takes."""
    if weight.dtype != torch.uint8 or weight.dim() != 2 or weight.shape[1] * 2 != k:
        raise ValueError(f"weight: expected uint8 [N, {k // 2}], got {weight.dtype} {tuple(weight.shape)}")
    return repack_w4(weight.contiguous().view(torch.int32), k)


def nvfp4_scale_rows(codes: torch.Tensor) -> torch.Tensor:
    """E4M3 scale bytes [N, G] -> bf16 [G, N] of the same values (exact: 3 mantissa bits, 2^-9..448)."""
    return codes.contiguous().view(FP8).to(torch.bfloat16).t().contiguous()


def mxfp4_scale_rows(codes: torch.Tensor) -> torch.Tensor:
    """E8M0 codes [N, G] (all <= MX_MAX_CODE) -> bf16 [G, N] holding 2^(e - 113) = 2^(e - 127) * 2^14,
    built as bf16 bits (exponent field e + 14, no rounding): the 2^14 undoes _e2m1's 2^-14 and keeps
    code 0 (2^-127, a bf16 subnormal) a normal number."""
    e = codes.to(torch.int16) + 14
    return (e << 7).view(torch.bfloat16).t().contiguous()


def _alpha(value: float, what: str) -> float:
    """A host-folded fp32 factor, refused unless it is a normal fp32 (no overflow, no flush)."""
    if not (math.isfinite(value) and 2.0**-126 <= abs(value) < 2.0**127):
        raise ValueError(f"{what} (the kernel's folded fp32 factor {value!r}) is outside fp32's normal range")
    return value


class _TritonFp4WeightOnly(W4A16Launch, TritonKernelMixin):
    """Shared by the NVFP4 and MXFP4 classes: re-lay once, then run the W4A16 kernels with FP4 set."""

    # Below marlin's float weight-only kernels (15): measured on the H200 decode step (8 Llama-3-8B
    # layers, CUDA graph; docs/results/gpu/step/step-after.json) this path ran 0.53x / 0.44x bf16 at
    # M = 1 / 16 for NVFP4 and 0.66x / 0.52x for MXFP4, against marlin's 0.97x / 0.86x: the FP4 GEMV
    # is instruction-bound (~1084 SASS per 128 weights vs 516 for the integer GEMV; providers/triton
    # README). Correct there (same error against bf16 as marlin), so it stays as the fallback.
    priority = 14
    quantizes_activation = False
    # dense dequantize + cuBLAS from this many rows (as mp.TritonW4A16LinearKernel.dense_min_m)
    dense_min_m = env_int("QLINEAR_TRITON_FP4_DENSE_MIN_M", 128, minimum=0)
    FP4 = 0
    GROUP = 0

    @classmethod
    def can_implement(cls, c):
        if c.act_dtype not in _16BIT:
            return False, f"act_dtype {c.act_dtype} is not float16/bfloat16 (weight-only: 16-bit activations)"
        if c.out_dtype is not None and c.out_dtype not in _OUT:
            return False, f"out_dtype {c.out_dtype} is not float16/bfloat16/float32"
        n, k = c.weight_shape
        if n % 8:
            return False, f"N={n} is not a multiple of 8"
        if k % cls.GROUP:
            return False, f"K={k} is not a multiple of the {cls.GROUP}-element scale block"
        return True, None

    def _scales(self, layer) -> tuple[torch.Tensor, float, float]:
        """(bf16 scale rows [G, N], alpha of the GEMV / bf16 tiles / dequant, alpha of fp16 tiles)."""
        raise NotImplementedError

    def process_weights_after_loading(self, layer):
        n, k = self.config.weight_shape
        sbytes, self._alpha_gemv, self._alpha_t16 = self._scales(layer)
        self.replace_parameter(layer, "weight", fp4_words(layer.weight.data, k))
        self.replace_parameter(layer, "weight_scale", sbytes)
        self._init_launch(sbytes.device, n, sbytes.shape[0], self.GROUP)

    def _nk(self):
        return self.config.weight_shape

    def _weights(self, layer):
        return layer.weight, layer.weight_scale, None, None, None

    def _one_scale(self, k: int) -> bool:
        return False  # 16 / 32-element scale blocks: SPG slabs per group in every 128-row block

    def _extra(self, path, dtype):
        # the FP4 decode, and its folded factor: fp16 tiles take the value itself, the other paths
        # value * 2^-14 (w4a16_kernels._e2m1_dot)
        alpha = self._alpha_t16 if path == "tiles" and dtype == torch.float16 else self._alpha_gemv
        return dict(FP4=self.FP4, alpha=alpha)


class TritonNvFp4WeightOnlyKernel(_TritonFp4WeightOnly, K.NvFp4LinearKernel):
    """NVFP4 weights (E2M1, E4M3 scales per 16, fp32 global scale) x 16-bit activations (W4A16):
    the activation is not quantized (weight-only), unlike the format's W4A4 reference."""

    FP4 = NVFP4
    GROUP = 16

    def _scales(self, layer):
        n, k = self.config.weight_shape
        sc = layer.weight_scale.data
        if tuple(sc.shape) != (n, k // 16) or sc.dtype not in (FP8, torch.uint8):
            raise ValueError(f"weight_scale: expected float8_e4m3fn [{n}, {k // 16}], got {sc.dtype} {tuple(sc.shape)}")
        b = sc.contiguous().view(torch.uint8)
        if bool(((b & 0x7F) == 0x7F).any()):
            raise ValueError("weight_scale: an E4M3 NaN code (0x7f / 0xff) in a weight scale")
        rows = nvfp4_scale_rows(b)
        gs = float(layer.weight_global_scale.data.float().reshape(()))  # once, at load
        if not (math.isfinite(gs) and gs > 0):
            raise ValueError(f"weight_global_scale: must be finite and > 0, got {gs}")
        # alpha 2^14 / gs where the decoded weight is value * 2^-14, 1 / gs for fp16 tiles (they take
        # the value itself, w4a16_kernels._e2m1_dot)
        return (rows, _alpha(2.0**14 / gs, "weight_global_scale: 2^14 / global_scale"),
                _alpha(1.0 / gs, "weight_global_scale: 1 / global_scale"))


class TritonMxFp4WeightOnlyKernel(_TritonFp4WeightOnly, K.MxFp4LinearKernel):
    """MXFP4 weights (E2M1, E8M0 scales per 32) x 16-bit activations (W4A16, weight-only). The E8M0
    scales are applied in fp32, so float16 activations work too."""

    FP4 = MXFP4
    GROUP = 32

    def _scales(self, layer):
        n, k = self.config.weight_shape
        sc = layer.weight_scale.data
        if tuple(sc.shape) != (n, k // 32) or sc.dtype != torch.uint8:
            raise ValueError(f"weight_scale: expected uint8 (E8M0) [{n}, {k // 32}], got {sc.dtype} {tuple(sc.shape)}")
        top = int(sc.max()) if sc.numel() else 0  # once, at load
        if top == 255:
            raise ValueError("weight_scale: E8M0 code 255 (NaN) in a weight scale")
        if top > MX_MAX_CODE:
            raise ValueError(f"weight_scale: E8M0 code {top} (2^{top - 127}) is above 2^{MX_MAX_CODE - 127}, where "
                             "the kernel's fp32 scale factor (with the decode's 2^14) would overflow")
        # rows 2^(e - 113); alpha 1 where the decoded weight is value * 2^-14, 2^-14 for fp16 tiles
        # (they take the value itself)
        return mxfp4_scale_rows(sc), 1.0, 2.0**-14


KERNELS = [TritonNvFp4WeightOnlyKernel, TritonMxFp4WeightOnlyKernel]
