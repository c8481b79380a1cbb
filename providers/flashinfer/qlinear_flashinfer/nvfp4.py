"""NVFP4 W4A4 over FlashInfer's ``mm_fp4`` with four backends (four kernel classes):

``mm_fp4(a [M, K/2] fp4, b [K/2, N] column-major, a_descale, b_descale (transposed like b), alpha,
out_dtype, out=None, block_size=16, use_8x4_sf_layout=False, backend=..., use_nvfp4=True)``
(flashinfer/gemm/gemm_base.py). Scales are E4M3 in the 128x4 layout; ``alpha`` is
1 / (input_global_scale * weight_global_scale).

* cutlass / cudnn / b12x: weight zero-padded to N % 32 and K % 64 (``layouts.pad_nvfp4_weight``),
  scales swizzled 128x4, the activation padded to the same K; output columns sliced back to N.
* trtllm: weight rows padded to N % 128, then rows shuffled and scales shuffled + interleaved for
  TRT-LLM-gen (``layouts.shuffle_matrix_a`` / ``shuffle_matrix_sf_a``, epilogue tile 128); bf16 out only.

Gates: capability AND library (the reference forgot one or the other for some of these), from
flashinfer 0.7.2.post1's requirement tables (gemm_base.py): CUTLASS and cuDNN sm_100+ (100/103/107/
110/120/121), TRT-LLM sm_100/103/107, b12x sm_120/121 (+ the CuTe-DSL runtime), each also checked
against the installed flashinfer's ``mm_fp4.is_backend_supported(backend, cc)``; cuDNN also needs
the ``cudnn`` Python module.
UNVERIFIED here: this workplace has no SM100/SM120 GPU. JIT-compiles on first use.
"""

from __future__ import annotations

import torch

from qlinear.kernel import NvFp4LinearKernel

from . import activation as A
from .layouts import (pad_nvfp4_weight, shuffle_matrix_a, shuffle_matrix_sf_a, slice_output,
                      swizzle_128x4)
from .library import JIT_NOTE, cuda_gate, fn


class _FlashInferNvFp4(NvFp4LinearKernel):
    provider = "flashinfer"
    notes = JIT_NOTE
    BACKEND = ""
    CAPS: tuple[int, ...] | None = None
    MIN_CC: int | None = 100
    NEEDS: tuple[str, ...] = ()
    min_capability = 100

    @classmethod
    def is_supported(cls, platform=None):
        return cuda_gate(platform, capabilities=cls.CAPS, min_capability=cls.MIN_CC, function="mm_fp4",
                         backend=cls.BACKEND, needs=cls.NEEDS)

    @classmethod
    def can_implement(cls, c):
        return True, None  # any N, K % 16 (the config's): padding covers the kernels' alignment

    def _global_scales(self, layer):
        alpha = getattr(layer, "alpha", None)
        if alpha is None:
            alpha = 1.0 / (layer.input_global_scale.data.float() * layer.weight_global_scale.data.float())
        self.replace_parameter(layer, "alpha", alpha.data.float().reshape(1))

    def process_weights_after_loading(self, layer):
        n, k = self.config.weight_shape
        w, pad_k = pad_nvfp4_weight(layer.weight.data)
        self.k_padded = k + pad_k
        self.replace_parameter(layer, "weight", w)  # [Np, Kp/2]
        s = torch.zeros(n, self.k_padded // 16, dtype=torch.uint8, device=w.device)
        s[:, : k // 16] = layer.weight_scale.data.view(torch.uint8)
        self.replace_parameter(layer, "weight_scale", swizzle_128x4(s.view(torch.float8_e4m3fn)))
        self._global_scales(layer)

    def _descales(self, x_sf, w_sf):
        return x_sf, w_sf

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        n = c.weight_shape[0]
        x2 = x.reshape(-1, x.shape[-1])
        xq, x_sf = A.nvfp4(x2, layer.input_global_scale, self.k_padded)
        want = c.out_dtype or x.dtype
        dt = self.out_dtype_for(want)
        a_sf, b_sf = self._descales(x_sf, layer.weight_scale)
        out = fn("mm_fp4")(xq, layer.weight.t(), a_sf, b_sf.t(), layer.alpha, dt, None, block_size=16,
                           use_8x4_sf_layout=False, backend=self.BACKEND, use_nvfp4=True)
        out = slice_output(out, n).to(want)
        if bias is not None:
            out = out + bias.to(out.dtype)
        return out.reshape(*x.shape[:-1], n)

    @staticmethod
    def out_dtype_for(want):
        return want if want in (torch.bfloat16, torch.float16) else torch.bfloat16


class FlashInferCutlassNvFp4LinearKernel(_FlashInferNvFp4):
    backend = "flashinfer_cutlass"
    BACKEND = "cutlass"
    priority = 25

    def _descales(self, x_sf, w_sf):
        return x_sf.view(torch.uint8), w_sf.view(torch.uint8)  # the CUTLASS runner takes raw bytes


class FlashInferCudnnNvFp4LinearKernel(_FlashInferNvFp4):
    backend = "flashinfer_cudnn"
    BACKEND = "cudnn"
    NEEDS = ("cudnn",)
    priority = 24

    def _descales(self, x_sf, w_sf):
        return x_sf.view(torch.uint8), w_sf.view(torch.uint8)


class FlashInferB12xNvFp4LinearKernel(_FlashInferNvFp4):
    """b12x: FlashInfer's CuTe-DSL warp-level MMA NVFP4 GEMM for SM120/SM121 (consumer/workstation Blackwell)."""

    backend = "flashinfer_b12x"
    BACKEND = "b12x"
    CAPS = (120, 121)  # flashinfer 0.7.2's _b12x_gemm_fp4_requirement table
    MIN_CC = None
    NEEDS = ("cutlass",)  # the CuTe-DSL runtime (nvidia-cutlass-dsl)
    min_capability = 120
    priority = 26


class FlashInferTrtllmNvFp4LinearKernel(_FlashInferNvFp4):
    backend = "flashinfer_trtllm"
    BACKEND = "trtllm"
    CAPS = (100, 103, 107)  # TRT-LLM-gen cubins: flashinfer 0.7.2's _trtllm_gemm_fp4_requirement table
    MIN_CC = None
    priority = 23

    def process_weights_after_loading(self, layer):
        n, k = self.config.weight_shape
        w, pad_k = pad_nvfp4_weight(layer.weight.data, n_align=128)
        self.k_padded = k + pad_k
        s = torch.zeros(w.shape[0], self.k_padded // 16, dtype=torch.uint8, device=w.device)
        s[:n, : k // 16] = layer.weight_scale.data.view(torch.uint8)
        self.replace_parameter(layer, "weight", shuffle_matrix_a(w, 128))
        self.replace_parameter(layer, "weight_scale", shuffle_matrix_sf_a(s, 128).view(torch.float8_e4m3fn))
        self._global_scales(layer)

    @staticmethod
    def out_dtype_for(want):
        return torch.bfloat16  # mm_fp4(backend="trtllm") supports bf16 output only



