"""INT8 W8A8 with ``torch._int_mm`` (int8 x int8 -> int32) and a fused scale epilogue.

Every INT8 scheme: per-tensor or per-channel weight scales; activations dynamic per token or
static per tensor; symmetric, or asymmetric with a zero point handled by the azp_adj correction
(x@W = (q - zp)@W = q@W - zp * colsum(W)), static and dynamic alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qlinear.kernel import Int8ScaledMMLinearKernel

from . import actquant as AQ
from . import compiled, epilogue
from .common import CUDA_W8A8_TABLE_VERSION, param, PRIO_CPU, PRIO_CUDA, as_2d, gate_cpu, gate_cuda, out_dtype, relay_w8


class _TorchInt8(Int8ScaledMMLinearKernel):
    backend = "torch"
    batch_invariant = False
    # CUDA's _int_mm (cuBLASLt) wants M > 16 and K, N multiples of 8; pad to these (0 = no padding)
    M_MIN = 0
    ALIGN = 1

    @classmethod
    def can_implement(cls, c):
        if c.weight_shape is None:
            return False, "weight_shape (N, K) is required to lay the weight out at load time"
        return True, None

    def process_weights_after_loading(self, layer):
        c = self.config
        w_name, s_name, is_name, izp_name, azp_name = self.layer_param_names
        n, k = c.weight_shape
        # _int_mm is fast with B as the transposed view of a row-major [N, K] (measured on CPU:
        # 0.8 ms vs 23 ms for a contiguous [K, N] at M=1, 4096^2), which is the as-loaded layout.
        w = getattr(layer, w_name)  # as loaded, [K, N] (its column sums are the zero-point correction)
        ws = relay_w8(self, layer, w_name, s_name, torch.int8, n, k)
        self.replace_parameter(layer, s_name, ws.reshape(1, -1))
        if c.is_static_input_scheme:
            xs = getattr(layer, is_name, None)
            if xs is None or xs.numel() != 1:
                raise ValueError(f"{is_name}: a static scheme needs a one-element input scale")
            self.replace_parameter(layer, is_name, xs.float().reshape(1))
            if not c.input_symmetric:
                zp = getattr(layer, izp_name, None)
                if zp is None or zp.numel() != 1:
                    raise ValueError(f"{izp_name}: a static asymmetric scheme needs a one-element zero point")
                self.replace_parameter(layer, izp_name, zp.to(torch.int32).reshape(1))
        if not c.input_symmetric:
            adj = getattr(layer, azp_name, None)
            if adj is None:  # not given: it is the weight's column sums
                adj = w.to(torch.int32).sum(0)
            if adj.numel() != n:
                raise ValueError(f"{azp_name}: expected N={n} column sums, got shape {tuple(adj.shape)}")
            self.replace_parameter(layer, azp_name, F.pad(adj.float().reshape(-1), (0, self.n_pad)).reshape(1, -1))
        self._zero_bias = torch.zeros(n + self.n_pad, dtype=torch.float32, device=w.device)
        self._variant = ("static" if c.is_static_input_scheme else "dyn", "sym" if c.input_symmetric else "asym",
                         "ch" if ws.numel() > 1 else "tensor")
        compiled.warmup(lambda m: self.apply_weights(layer, torch.zeros(m, k, dtype=c.input_dtype, device=w.device)))

    def apply_weights(self, layer, x, bias=None):
        c = self.config
        w_name, s_name, is_name, izp_name, azp_name = self.layer_param_names
        n = c.weight_shape[0]
        lead = x.shape[:-1]
        x2 = as_2d(x)
        m = x2.shape[0]
        if c.is_static_input_scheme:
            sx = param(layer, is_name)
            zp = None if c.input_symmetric else param(layer, izp_name)
            quant = compiled.get(AQ.int8_static, self._variant)
            q = quant(x2, sx) if zp is None else quant(x2, sx, zp)
        elif c.input_symmetric:
            q, sx = compiled.get(AQ.int8_dynamic_sym)(x2)
            zp = None
        else:
            q, sx, zp = compiled.get(AQ.int8_dynamic_asym)(x2)
        if self.k_pad:
            q = F.pad(q, (0, self.k_pad))
        if m < self.M_MIN:
            q = F.pad(q, (0, 0, 0, self.M_MIN - m))
        acc = torch._int_mm(q, param(layer, w_name))
        if m < self.M_MIN:
            acc = acc[:m]
        b = self._zero_bias if bias is None else F.pad(bias.float(), (0, self.n_pad))
        dt = out_dtype(c, x)
        sw = param(layer, s_name)
        if zp is None:
            out = compiled.get(epilogue.scale_bias, self._variant)(acc, sx, sw, b, dt)
        else:
            out = compiled.get(epilogue.azp_scale_bias, self._variant)(acc, zp, param(layer, azp_name), sx, sw, b, dt)
        if self.n_pad:
            out = out[:, :n]
        return out.reshape(*lead, n)


class TorchCpuInt8ScaledMMLinearKernel(_TorchInt8):
    """CPU ``torch._int_mm`` (oneDNN / AMX-VNNI int8 GEMM). Any shape."""

    priority = PRIO_CPU

    @classmethod
    def is_supported(cls, platform=None):
        return gate_cpu(platform, "_int_mm")


class TorchCudaInt8ScaledMMLinearKernel(_TorchInt8):
    """CUDA ``torch._int_mm`` (cuBLASLt IMMA). Pads M to 17 rows and K, N to multiples of 8."""

    priority = PRIO_CUDA
    table_version = CUDA_W8A8_TABLE_VERSION
    min_capability = 80
    M_MIN = 17
    ALIGN = 8

    @classmethod
    def is_supported(cls, platform=None):
        return gate_cuda(platform, cls.min_capability, "_int_mm")
