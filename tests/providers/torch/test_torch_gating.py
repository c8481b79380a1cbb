"""Gates of the torch provider under simulated platforms, and what selection picks with them."""

import pytest
import torch

from qlinear import FP8ScaledMMLinearLayerConfig, Int8ScaledMMLinearLayerConfig, MPLinearLayerConfig, scalar_types
from qlinear import quant_key as qk
from qlinear.platform import simulate_platform
from qlinear.selection import select
from qlinear_torch import kernels as K
from qlinear_torch.kernels import (TorchCpuFP8ScaledMMLinearKernel, TorchCpuInt8ScaledMMLinearKernel,
                                   TorchCpuW4A16LinearKernel, TorchCpuW8A16LinearKernel,
                                   TorchCudaChannelWiseFP8ScaledMMLinearKernel, TorchCudaFp8BlockScaledMMLinearKernel,
                                   TorchCudaInt8ScaledMMLinearKernel, TorchCudaPerTensorFP8ScaledMMLinearKernel,
                                   TorchCudaRowWiseFP8ScaledMMLinearKernel, TorchCudaW4A16LinearKernel,
                                   TorchCudaW8A16LinearKernel)

FP8_TOKEN = FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (256, 512))
FP8_TENSOR = FP8ScaledMMLinearLayerConfig(qk.kFp8StaticTensorSym, qk.kFp8StaticTensorSym, (256, 512))
FP8_BLOCK = FP8ScaledMMLinearLayerConfig(qk.kFp8Static128BlockSym, qk.kFp8Dynamic128Sym, (256, 512))
INT8 = Int8ScaledMMLinearLayerConfig(False, True, True, (256, 512))
W4 = MPLinearLayerConfig((4096, 4096), (4096, 4096), scalar_types.uint4b8, torch.bfloat16, 128, False, False)
W8 = MPLinearLayerConfig((512, 256), (512, 256), scalar_types.uint8b128, torch.bfloat16, -1, False, False)


def test_every_kernel_is_registered_and_named():
    names = [k.__name__ for k in K.KERNELS]
    assert len(names) == len(set(names)) == 11
    assert all(k.backend == "torch" for k in K.KERNELS)


@pytest.mark.parametrize("kernel", [TorchCudaPerTensorFP8ScaledMMLinearKernel, TorchCudaChannelWiseFP8ScaledMMLinearKernel])
def test_fp8_needs_sm89(kernel):
    with simulate_platform("sm80"):
        ok, why = kernel.is_supported()
    assert not ok and why == "needs CUDA cc>=89, have 80"
    for p in ("sm89", "sm90", "sm100"):
        with simulate_platform(p):
            assert kernel.is_supported() == (True, None)


def test_rowwise_fp8_needs_sm90_and_bf16_out():
    with simulate_platform("sm89"):
        assert TorchCudaRowWiseFP8ScaledMMLinearKernel.is_supported() == (False, "needs CUDA cc>=90, have 89")
    with simulate_platform("sm90"):
        assert TorchCudaRowWiseFP8ScaledMMLinearKernel.is_supported()[0]
    ok, why = TorchCudaRowWiseFP8ScaledMMLinearKernel.can_implement(
        FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (256, 512), torch.float16))
    assert not ok and "bfloat16" in why
    assert not TorchCudaRowWiseFP8ScaledMMLinearKernel.can_implement(FP8_TENSOR)[0]
    assert TorchCudaRowWiseFP8ScaledMMLinearKernel.can_implement(FP8_TOKEN) == (True, None)


def test_per_tensor_fp8_only_takes_per_tensor():
    assert TorchCudaPerTensorFP8ScaledMMLinearKernel.can_implement(FP8_TENSOR) == (True, None)
    ok, why = TorchCudaPerTensorFP8ScaledMMLinearKernel.can_implement(FP8_TOKEN)
    assert not ok and "per-tensor" in why


def test_block_fp8_is_sm90_only():
    with simulate_platform("sm90"):
        assert TorchCudaFp8BlockScaledMMLinearKernel.is_supported() == (True, None)
    with simulate_platform("sm100"):
        ok, why = TorchCudaFp8BlockScaledMMLinearKernel.is_supported()
        assert not ok and "SM90" in why
    with simulate_platform("sm89"):
        assert not TorchCudaFp8BlockScaledMMLinearKernel.is_supported()[0]
    assert TorchCudaFp8BlockScaledMMLinearKernel.can_implement(FP8_BLOCK) == (True, None)


@pytest.mark.parametrize("kernel", [k for k in K.KERNELS if "Cuda" in k.__name__], ids=lambda k: k.__name__)
def test_cuda_kernels_refuse_cpu_and_rocm(kernel):
    with simulate_platform("cpu"):
        ok, why = kernel.is_supported()
        assert not ok and why == "CUDA kernel; platform is cpu"
    with simulate_platform("mi300"):
        ok, why = kernel.is_supported()
        assert not ok and "rocm" in why


@pytest.mark.parametrize("kernel", [k for k in K.KERNELS if "Cpu" in k.__name__], ids=lambda k: k.__name__)
def test_cpu_kernels_refuse_gpu(kernel):
    with simulate_platform("sm90"):
        assert kernel.is_supported() == (False, "CPU kernel; platform is cuda")
    with simulate_platform("zen5"):
        assert kernel.is_supported()[0]


def test_cpu_fp8_is_available_but_says_slow():
    with simulate_platform("cpu"):
        ok, note = TorchCpuFP8ScaledMMLinearKernel.is_supported()
    assert ok and "slow" in note
    assert TorchCpuFP8ScaledMMLinearKernel.priority < 0  # below emulation (0)


def test_cpu_priorities_rank_native_int_kernels_above_emulation():
    for k in (TorchCpuInt8ScaledMMLinearKernel, TorchCpuW4A16LinearKernel, TorchCpuW8A16LinearKernel):
        assert k.priority > 0


def test_selection_on_cpu():
    """With the emulation provider installed too: INT8 / W4A16 / W8A16 go to torch, FP8 to emulation."""
    from qlinear_emulation.kernels import KERNELS as EMU

    ks = K.KERNELS + EMU
    with simulate_platform("cpu"):
        assert select(INT8, kernels=ks).kernel is TorchCpuInt8ScaledMMLinearKernel
        assert select(W4, kernels=ks).kernel is TorchCpuW4A16LinearKernel
        assert select(W8, kernels=ks).kernel is TorchCpuW8A16LinearKernel
        sel = select(FP8_TOKEN, kernels=ks)
        assert sel.kernel.provider == "emulation" or sel.kernel.__name__.startswith("Emulation")
        assert TorchCpuFP8ScaledMMLinearKernel in sel.order


def test_selection_on_sm90():
    ks = K.KERNELS
    with simulate_platform("sm90"):
        assert select(FP8_TOKEN, kernels=ks).kernel is TorchCudaRowWiseFP8ScaledMMLinearKernel
        assert select(FP8_TENSOR, kernels=ks).kernel is TorchCudaPerTensorFP8ScaledMMLinearKernel
        assert select(FP8_BLOCK, kernels=ks).kernel is TorchCudaFp8BlockScaledMMLinearKernel
        assert select(INT8, kernels=ks).kernel is TorchCudaInt8ScaledMMLinearKernel
        assert select(W4, kernels=ks).kernel is TorchCudaW4A16LinearKernel
    with simulate_platform("sm89"):  # no row-wise: the unit-scale fallback
        assert select(FP8_TOKEN, kernels=ks).kernel is TorchCudaChannelWiseFP8ScaledMMLinearKernel


def test_w4a16_can_implement_reasons():
    def cfg(**kw):
        base = dict(full_weight_shape=(512, 256), partition_weight_shape=(512, 256), weight_type=scalar_types.uint4b8,
                    act_type=torch.bfloat16, group_size=128, zero_points=False, has_g_idx=False)
        base.update(kw)
        return MPLinearLayerConfig(**base)

    for k in (TorchCpuW4A16LinearKernel, TorchCudaW4A16LinearKernel):
        assert k.can_implement(cfg()) == (True, None)
        assert k.can_implement(cfg(group_size=-1)) == (True, None)  # per channel: K=512 runs as g256
        ok, why = k.can_implement(cfg(has_g_idx=True))
        assert not ok and "g_idx" in why
        ok, why = k.can_implement(cfg(group_size=16))
        assert not ok and "32" in why
        ok, why = k.can_implement(cfg(weight_type=scalar_types.uint8b128))
        assert not ok and "weight_type" in why
        assert k.can_implement(cfg(weight_type=scalar_types.uint4, zero_points=True)) == (True, None)
    ok, why = TorchCpuW4A16LinearKernel.can_implement(cfg(partition_weight_shape=(512, 248), full_weight_shape=(512, 248)))
    assert not ok and "N=248" in why
    ok, why = TorchCudaW4A16LinearKernel.can_implement(cfg(act_type=torch.float16))
    assert not ok and "bfloat16" in why
    assert TorchCpuW4A16LinearKernel.can_implement(cfg(act_type=torch.float16)) == (True, None)


def test_w8a16_can_implement_reasons():
    for k in (TorchCpuW8A16LinearKernel, TorchCudaW8A16LinearKernel):
        assert k.can_implement(W8) == (True, None)
        ok, why = k.can_implement(MPLinearLayerConfig((512, 256), (512, 256), scalar_types.uint8b128, torch.bfloat16, 128, False, False))
        assert not ok and "per-channel" in why
        ok, why = k.can_implement(MPLinearLayerConfig((512, 256), (512, 256), scalar_types.uint8, torch.bfloat16, -1, True, False))
        assert not ok and "uint8b128" in why


def test_int8_needs_weight_shape():
    ok, why = TorchCpuInt8ScaledMMLinearKernel.can_implement(Int8ScaledMMLinearLayerConfig(False, True, True))
    assert not ok and "weight_shape" in why


def test_cuda_int8_gate():
    with simulate_platform("sm75"):
        assert TorchCudaInt8ScaledMMLinearKernel.is_supported() == (False, "needs CUDA cc>=80, have 75")
    with simulate_platform("sm80"):
        assert TorchCudaInt8ScaledMMLinearKernel.is_supported() == (True, None)


def test_cuda_w8a16_is_slow_and_last():
    with simulate_platform("sm90"):
        ok, note = TorchCudaW8A16LinearKernel.is_supported()
    assert ok and "slow" in note
    assert 0 < TorchCudaW8A16LinearKernel.priority < TorchCudaW4A16LinearKernel.priority


def test_provider_is_discovered_through_its_entry_point(fresh_registry):
    info = fresh_registry.providers.get("torch")
    assert info is not None and info.ok, getattr(info, "error", None)
    assert {k.__name__ for k in info.kernels} == {k.__name__ for k in K.KERNELS}
