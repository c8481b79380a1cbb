"""FP8 W8A8 (per-tensor / per-channel weights; static or dynamic per-tensor, dynamic per-token
activations) with ``torch._scaled_mm``, on CUDA (cc>=89) and, slowly, on CPU.

Three CUDA strategies as in vLLM: both scales per tensor go straight into ``_scaled_mm``
(PerTensor); otherwise row-wise scale vectors in ``_scaled_mm`` (RowWise, SM90+, bf16 output
only); or unit scales with an fp32 output and the scales applied after (ChannelWise, the
general fallback).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qlinear.kernel import FP8ScaledMMLinearKernel

from . import actquant as AQ
from . import compiled, epilogue
from .common import CUDA_W8A8_TABLE_VERSION, param, PRIO_CPU_SLOW, PRIO_CUDA, PRIO_CUDA_FALLBACK, as_2d, gate_cpu, gate_cuda, out_dtype, relay_w8

FP8 = torch.float8_e4m3fn
# Measured on this project's CI CPU (Xeon, torch 2.13): _scaled_mm at N=K=4096 takes ~0.44 s at M=1
# and ~6 s at M=16 (an unfused reference loop), vs ~1-3 ms for emulation's float32 matmul.
CPU_SLOW_NOTE = ("available but slow: CPU torch._scaled_mm is emulated (~0.4 s at M=1, 4096x4096 here); "
                 "ranked below emulation (priority -10)")


class _TorchFP8(FP8ScaledMMLinearKernel):
    backend = "torch"
    ALIGN = 1  # CUDA _scaled_mm needs K and N multiples of 16

    @classmethod
    def can_implement(cls, c):
        if c.is_block:
            return False, "block-scaled FP8 is the fp8_block family"
        return True, None

    # ---- load time ----------------------------------------------------------------------------
    def process_weights_after_loading(self, layer):
        c = self.config
        w_name, s_name, is_name, ub_name = self.layer_param_names
        n, k = c.weight_shape
        w = getattr(layer, w_name)
        ws = relay_w8(self, layer, w_name, s_name, FP8, n, k)  # mat2 of _scaled_mm must be column-major
        self.replace_parameter(layer, s_name, self._weight_scale_layout(ws))
        xs = getattr(layer, is_name, None)
        if c.activation_quant_key.scale.static:
            if xs is None or xs.numel() != 1:
                raise ValueError(f"{is_name}: a static FP8 activation scheme needs a one-element input scale")
        if xs is not None:
            self.replace_parameter(layer, is_name, xs.float().reshape(1))
        ub = getattr(layer, ub_name, None)
        if ub is not None:
            self.replace_parameter(layer, ub_name, ub.float().reshape(1))
        self._zero_bias = torch.zeros(n + self.n_pad, dtype=torch.float32, device=w.device)
        self._ones = torch.ones(1, dtype=torch.float32, device=w.device)
        self._variant = ("fp8", str(c.activation_quant_key.scale.group_shape), str(c.weight_quant_key.scale.group_shape))
        compiled.warmup(lambda m: self.apply_weights(layer, torch.zeros(m, k, dtype=c.input_dtype, device=w.device)))

    def _weight_scale_layout(self, ws: torch.Tensor) -> torch.Tensor:
        return ws.reshape(1, -1)  # [1] or [1, N]: broadcasts against [M, N]

    # ---- per call -------------------------------------------------------------------------------
    def _quantize(self, layer, x2):
        """x [M, K] -> (fp8 q [M, K], fp32 scale [1] or [M, 1])."""
        c = self.config
        _, _, is_name, ub_name = self.layer_param_names
        if x2.dtype == FP8:  # quantized upstream; its scale is the layer's input_scale
            xs = param(layer, is_name)
            if xs is None:
                raise ValueError(f"x.dtype: an fp8 activation needs the layer's {is_name}")
            return x2, xs
        sk = c.activation_quant_key.scale
        if sk.group_shape.is_per_token():
            ub = param(layer, ub_name)
            if ub is not None:
                return compiled.get(AQ.fp8_dynamic_token, ("ub",))(x2, ub)
            return compiled.get(AQ.fp8_dynamic_token)(x2)
        if sk.static:
            xs = param(layer, is_name)
            return compiled.get(AQ.fp8_static)(x2, xs), xs
        return compiled.get(AQ.fp8_dynamic_tensor)(x2)

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        n = c.weight_shape[0]
        lead = x.shape[:-1]
        x2 = as_2d(x)
        q, sx = self._quantize(layer, x2)
        if self.k_pad:
            q = F.pad(q.view(torch.uint8), (0, self.k_pad)).view(FP8)
        out = self._mm(layer, q, sx, bias, out_dtype(c, x))
        if self.n_pad:
            out = out[:, :n]
        return out.reshape(*lead, n)

    def _bias(self, bias):
        return self._zero_bias if bias is None else F.pad(bias.float(), (0, self.n_pad))

    def _mm_unit_then_scale(self, layer, q, sx, bias, dt):
        """_scaled_mm with unit scales into fp32, then one fused scale+bias+cast pass."""
        w_name, s_name = self.layer_param_names[:2]
        acc = torch._scaled_mm(q, param(layer, w_name), scale_a=self._ones, scale_b=self._ones, out_dtype=torch.float32)
        return compiled.get(epilogue.scale_bias, self._variant)(acc, sx, param(layer, s_name), self._bias(bias), dt)


class TorchCpuFP8ScaledMMLinearKernel(_TorchFP8):
    """CPU ``torch._scaled_mm``: correct for every FP8 scheme, but an unfused emulation in torch,
    so it ranks below the emulation provider; useful only when forced."""

    priority = PRIO_CPU_SLOW

    @classmethod
    def is_supported(cls, platform=None):
        ok, why = gate_cpu(platform, "_scaled_mm")
        return (True, CPU_SLOW_NOTE) if ok else (ok, why)

    def _mm(self, layer, q, sx, bias, dt):
        return self._mm_unit_then_scale(layer, q, sx, bias, dt)


class _TorchCudaFP8(_TorchFP8):
    ALIGN = 16
    min_capability = 89
    table_version = CUDA_W8A8_TABLE_VERSION

    @classmethod
    def is_supported(cls, platform=None):
        return gate_cuda(platform, cls.min_capability, "_scaled_mm")


def _both_per_tensor(c) -> bool:
    return c.weight_quant_key.scale.group_shape.is_per_tensor() and c.activation_quant_key.scale.group_shape.is_per_tensor()


class TorchCudaPerTensorFP8ScaledMMLinearKernel(_TorchCudaFP8):
    """Both scales per tensor: ``_scaled_mm`` applies them (and the bias) itself."""

    priority = PRIO_CUDA

    @classmethod
    def can_implement(cls, c):
        ok, why = super().can_implement(c)
        if not ok:
            return ok, why
        if not _both_per_tensor(c):
            return False, "needs per-tensor weight and activation scales"
        return True, None

    def _weight_scale_layout(self, ws):
        return ws.reshape(())  # a 0-dim fp32 scale, as per-tensor _scaled_mm wants

    def _mm(self, layer, q, sx, bias, dt):
        w_name, s_name = self.layer_param_names[:2]
        b = None
        if bias is not None and dt != torch.float32:
            b = F.pad(bias, (0, self.n_pad)).to(dt)
        out = torch._scaled_mm(q, param(layer, w_name), scale_a=sx.reshape(()), scale_b=param(layer, s_name),
                               bias=b, out_dtype=dt)
        if bias is not None and b is None:
            out = out + F.pad(bias.float(), (0, self.n_pad))
        return out


class TorchCudaRowWiseFP8ScaledMMLinearKernel(_TorchCudaFP8):
    """Per-token / per-channel scales as row-wise vectors inside ``_scaled_mm`` (SM90+, bf16 out)."""

    priority = PRIO_CUDA
    min_capability = 90

    @classmethod
    def can_implement(cls, c):
        ok, why = super().can_implement(c)
        if not ok:
            return ok, why
        if _both_per_tensor(c):
            return False, "both scales per tensor: the per-tensor kernel does it with one scalar each"
        dt = out_dtype(c)
        if dt != torch.bfloat16:
            return False, f"row-wise _scaled_mm outputs bfloat16 only, layer wants {dt}"
        return True, None

    def _mm(self, layer, q, sx, bias, dt):
        w_name, s_name = self.layer_param_names[:2]
        m = q.shape[0]
        sa = sx.reshape(-1, 1).expand(m, 1).contiguous()
        sb = param(layer, s_name)
        if sb.numel() == 1:
            sb = sb.expand(1, param(layer, w_name).shape[1]).contiguous()
        out = torch._scaled_mm(q, param(layer, w_name), scale_a=sa, scale_b=sb, out_dtype=dt)
        if bias is not None:
            out = out + F.pad(bias, (0, self.n_pad)).to(dt)
        return out


class TorchCudaChannelWiseFP8ScaledMMLinearKernel(_TorchCudaFP8):
    """Any scale layout, any output dtype: unit-scale ``_scaled_mm`` to fp32, then scales + bias."""

    priority = PRIO_CUDA_FALLBACK

    def _mm(self, layer, q, sx, bias, dt):
        return self._mm_unit_then_scale(layer, q, sx, bias, dt)
