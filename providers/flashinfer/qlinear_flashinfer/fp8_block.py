"""Block-scaled FP8 on sm_90: FlashInfer's ``fp8_blockscale_gemm_sm90`` for small M, the best OTHER
installed block-FP8 kernel for large M (the reference system's FlashInferFp8DeepGEMMDynamicBlockScaled).

``fp8_blockscale_gemm_sm90(input bf16 [M,K], weight fp8 [N,K], input_scale=None, weight_scale fp32
[ceil(N/128), K/128], out=None, out_dtype)`` quantizes the bf16 activation per 1x128 group itself and
picks its swapAB variant for M < 32 (flashinfer/gemm/gemm_base.py: sm_90 only, K % 128, N % 64,
bf16 input). It takes the loaded layout as is.

For M >= 32 the kernel asks the core for the best block-FP8 kernel on this machine, excluding itself
(``qlinear.select(config, kernels=<registry's fp8_block kernels minus this one>)``), so it delegates
to whatever is installed (triton, cutlass, fbgemm, torch ... or emulation) instead of hard-wiring one
library. The delegate re-lays its own copy of the weights on a child module; if nothing else can
run the layer, FlashInfer serves every M. The choice is made in ``process_weights_after_loading``.

JIT-compiles on first use (~100 s on an H100), never at import, selection or weight loading.
"""

from __future__ import annotations

import threading

import torch

from qlinear.kernel import Fp8BlockScaledMMLinearKernel

from .library import JIT_NOTE, cuda_gate, fn

_choosing = threading.local()  # classes currently choosing a delegate (guards mutual delegation)


class FlashInferFp8BlockScaledDynamicLinearKernel(Fp8BlockScaledMMLinearKernel):
    provider = "flashinfer"
    backend = "flashinfer"
    priority = 25
    min_capability = 90
    apply_input_quant = False  # takes the bf16 activation; the GEMM quantizes it
    notes = JIT_NOTE
    SMALL_M = 32  # below this FlashInfer's swapAB kernel; at and above, the delegate

    @classmethod
    def is_supported(cls, platform=None):
        return cuda_gate(platform, capabilities=(90,), function="fp8_blockscale_gemm_sm90")

    @classmethod
    def can_implement(cls, c):
        if c.weight_block != (128, 128) or c.activation_quant_key.scale.group_shape.col != 128:
            return False, f"needs 128x128 weight blocks and 1x128 activation groups, got {c.weight_block}"
        if c.input_dtype != torch.bfloat16:
            return False, f"activations must be bfloat16 (fp8_blockscale_gemm_sm90 input), got {c.input_dtype}"
        if c.out_dtype not in (None, torch.bfloat16, torch.float16):
            return False, f"out_dtype must be bfloat16 or float16, got {c.out_dtype}"
        n, k = c.weight_shape
        if k % 128:
            return False, f"K={k} must be a multiple of 128"
        if n % 64:
            return False, f"N={n} must be a multiple of 64"
        return True, None

    # ---- large-M delegate ---------------------------------------------------------------------
    def choose_delegate(self):
        """The best other fp8_block kernel here, via the core's selector (None if there is none)."""
        from qlinear.registry import get_registry
        from qlinear.selection import select

        busy = getattr(_choosing, "classes", set())
        cands = [k for k in get_registry().kernels("fp8_block")
                 if k is not type(self) and not issubclass(k, FlashInferFp8BlockScaledDynamicLinearKernel) and k not in busy]
        _choosing.classes = busy | {type(self)}
        try:
            return select(self.config, kernels=cands, raise_on_failure=False).kernel
        finally:
            _choosing.classes = busy

    def process_weights_after_loading(self, layer):
        from qlinear.layers import make_layer

        name = "weight_scale_inv" if getattr(layer, "weight_scale_inv", None) is not None else "weight_scale"
        self.scale_name = name
        self.replace_parameter(layer, "weight", layer.weight.data.contiguous())
        self.replace_parameter(layer, name, getattr(layer, name).data.float().contiguous())
        self.delegate = None
        dcls = self.choose_delegate()
        if dcls is not None:
            # the delegate gets its own module holding the as-loaded tensors (shared, not copied) to re-lay
            shadow = make_layer(self.config, {"weight": layer.weight.data, "weight_scale_inv": getattr(layer, name).data})
            self.delegate = dcls.create(self.config)
            self.delegate.process_weights_after_loading(shadow)
            layer.flashinfer_large_m = shadow  # a child module: follows .to(), shows in state_dict
        layer.flashinfer_large_m_kernel = self.delegate.full_name() if self.delegate is not None else None

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        x2 = x.reshape(-1, x.shape[-1])
        if x2.shape[0] >= self.SMALL_M and self.delegate is not None:
            out = self.delegate.apply_weights(layer.flashinfer_large_m, x2, bias)
            return out.reshape(*x.shape[:-1], c.weight_shape[0])
        out = fn("fp8_blockscale_gemm_sm90")(x2.contiguous(), layer.weight, None, getattr(layer, self.scale_name),
                                             None, c.out_dtype or torch.bfloat16)
        if bias is not None:
            out = out + bias.to(out.dtype)
        return out.reshape(*x.shape[:-1], c.weight_shape[0])
