"""The one selector: order, platform gates, backend filter, disabled globs, force, batch invariance.

The kernels here are stand-ins with real gates (no GEMM): they test the selector's logic under
simulated machines. Real kernels are tested by the conformance kit in tests/providers/.
"""

import warnings

import pytest
import torch

import qlinear
from qlinear import quant_key as qk
from qlinear.config import FP8ScaledMMLinearLayerConfig, MPLinearLayerConfig
from qlinear.kernel import FP8ScaledMMLinearKernel, MPLinearKernel
from qlinear.platform import resolve_platform, simulate_platform
from qlinear.scalar_type import scalar_types as st
from qlinear.selection import NoKernelError, select
from qlinear.settings import override_settings
from qlinear.testing import StandIn

FP8 = FP8ScaledMMLinearLayerConfig(qk.kFp8StaticChannelSym, qk.kFp8DynamicTokenSym, (4096, 4096))


class _Fake(StandIn, FP8ScaledMMLinearKernel):
    provider = "fake"
    kinds = ("cuda", "rocm", "xpu", "cpu")
    min_cc = None
    zen_only = False

    @classmethod
    def is_supported(cls, platform=None):
        p = resolve_platform(platform)
        if p.kind not in cls.kinds:
            return False, f"needs {'/'.join(cls.kinds)}, this is {p.kind}"
        if cls.min_cc and p.kind == "cuda" and not p.has_capability(cls.min_cc):
            return False, f"needs CUDA cc>={cls.min_cc}, have {p.capability}"
        if cls.zen_only and not p.is_zen():
            return False, "not an AMD Zen CPU"
        return True, None



def fake(name, priority, backend, **attrs):
    return type(name, (_Fake,), dict(priority=priority, backend=backend, **attrs))


Cutlass = fake("CutlassFP8", 50, "cutlass", kinds=("cuda",), min_cc=89)
Flashinfer = fake("FlashInferFP8", 55, "flashinfer_cutlass", kinds=("cuda",), min_cc=100)
Triton = fake("TritonFP8", 20, "triton", kinds=("cuda", "rocm"), min_cc=89)
Aiter = fake("AiterFP8", 60, "aiter", kinds=("rocm",))
Xpu = fake("XpuFP8", 40, "xpu", kinds=("xpu",))
Zen = fake("ZenFP8", 30, "zentorch", kinds=("cpu",), zen_only=True)
Torch = fake("TorchFP8", 10, "torch", min_cc=89)
Emu = fake("EmulationFP8", 0, "emulation", batch_invariant=True)
ALL = [Emu, Torch, Zen, Xpu, Aiter, Triton, Flashinfer, Cutlass]


@pytest.mark.parametrize("preset,expected", [
    ("sm80", "EmulationFP8"),  # no FP8 on Ampere: every FP8 kernel says why, emulation remains
    ("sm89", "CutlassFP8"),
    ("sm90", "CutlassFP8"),
    ("sm100", "FlashInferFP8"),
    ("mi300", "AiterFP8"),
    ("xpu", "XpuFP8"),
    ("zen5", "ZenFP8"),
    ("cpu", "TorchFP8"),
])
def test_order_per_platform(preset, expected):
    with simulate_platform(preset):
        sel = select(FP8, kernels=ALL)
    assert sel.kernel.__name__ == expected
    assert [k.__name__ for k in sel.order] == sorted((k.__name__ for k in ALL), key=lambda n: -next(k.priority for k in ALL if k.__name__ == n))
    # every other kernel has a reason
    assert set(sel.reasons) == {k.full_name() for k in ALL} - {sel.kernel.full_name()}


def test_reasons_name_the_gate():
    with simulate_platform("sm80"):
        sel = select(FP8, kernels=ALL, evaluate_all=True)
    assert sel.reasons["fake.CutlassFP8"] == "needs CUDA cc>=89, have 80"
    assert sel.reasons["fake.AiterFP8"] == "needs rocm, this is cuda"
    assert "EmulationFP8" in sel.explain() and "selected" in sel.explain()


def test_ties_broken_by_name_deterministically():
    a, b = fake("BKernel", 5, "x"), fake("AKernel", 5, "x")
    with simulate_platform("cpu"):
        assert select(FP8, kernels=[a, b]).kernel is b
        assert select(FP8, kernels=[b, a]).kernel is b


def test_backend_filter():
    with simulate_platform("sm90"), override_settings(linear_backend="triton"):
        sel = select(FP8, kernels=ALL)
    assert sel.kernel is Triton
    assert "linear_backend asks for 'triton'" in sel.reasons["fake.CutlassFP8"]


def test_backend_filter_per_family():
    with simulate_platform("sm90"), override_settings(linear_backend="auto,fp8=torch,mp=marlin"):
        assert qlinear.get_settings().backend_for("fp8") == "torch"
        assert select(FP8, kernels=ALL).kernel is Torch


def test_backend_filter_that_leaves_nothing_warns_and_falls_back():
    with simulate_platform("sm90"), override_settings(linear_backend="machete"):
        with pytest.warns(UserWarning, match="matches no fp8 kernel; falling back"):
            sel = select(FP8, kernels=ALL)
    assert sel.kernel is Cutlass and sel.warnings


def test_strict_backend_filter_fails():
    with simulate_platform("sm90"), override_settings(linear_backend="machete", strict_backend=True):
        with pytest.raises(NoKernelError, match="strict"):
            select(FP8, kernels=ALL)


def test_disabled_names_and_globs():
    with simulate_platform("sm90"), override_settings(disabled_kernels=("CutlassFP8", "fake.Tri*")):
        sel = select(FP8, kernels=ALL)
    assert sel.kernel is Torch
    assert "QLINEAR_DISABLED_KERNELS matches 'CutlassFP8'" in sel.reasons["fake.CutlassFP8"]
    assert "'fake.Tri*'" in sel.reasons["fake.TritonFP8"]


def test_force_goes_first_but_is_gated():
    with simulate_platform("sm90"):
        assert select(FP8, kernels=ALL, force=["TritonFP8"]).kernel is Triton
        with override_settings(force_kernels=("TorchFP8",)):
            assert select(FP8, kernels=ALL).kernel is Torch
        # forced but unsupported here: falls back (the reference raised), with the reason
        sel = select(FP8, kernels=ALL, force=[Aiter])
    assert sel.kernel is Cutlass
    assert sel.reasons["fake.AiterFP8"].startswith("forced, but needs rocm")


def test_force_does_not_bypass_disabled():
    with simulate_platform("sm90"), override_settings(disabled_kernels=("TritonFP8",), force_kernels=("TritonFP8",)):
        sel = select(FP8, kernels=ALL)
    assert sel.kernel is Cutlass and "disabled" in sel.reasons["fake.TritonFP8"]


def test_batch_invariant_keeps_only_declared_kernels():
    with simulate_platform("sm90"), override_settings(batch_invariant=True):
        sel = select(FP8, kernels=ALL)
    assert sel.kernel is Emu
    assert "not batch-invariant" in sel.reasons["fake.CutlassFP8"]


def test_failure_lists_every_kernel():
    with simulate_platform("sm80"), pytest.raises(NoKernelError) as e:
        select(FP8, kernels=[Cutlass, Aiter, Zen])
    msg = str(e.value)
    for name, why in [("CutlassFP8", "cc>=89"), ("AiterFP8", "needs rocm"), ("ZenFP8", "needs cpu")]:
        assert name in msg and why in msg
    with simulate_platform("sm80"):
        assert select(FP8, kernels=[Cutlass], raise_on_failure=False).kernel is None


def test_raising_gate_is_a_rejection_not_a_crash():
    class Broken(_Fake):
        priority = 99

        @classmethod
        def is_supported(cls, platform=None):
            raise ImportError("libfoo.so: cannot open shared object file")

    with simulate_platform("sm90"):
        sel = select(FP8, kernels=[Broken, Cutlass])
    assert sel.kernel is Cutlass
    assert "is_supported raised ImportError: libfoo.so" in sel.reasons[Broken.full_name()]


def test_can_implement_is_checked_for_every_family():
    """The reference skipped can_implement for MXFP4; here every family runs both gates."""

    class PickyMP(StandIn, MPLinearKernel):
        provider, priority = "fake", 5

        @classmethod
        def can_implement(cls, c):
            return (c.group_size == 128, f"group_size {c.group_size} not supported")

    c64 = MPLinearLayerConfig((512, 256), (512, 256), st.uint4b8, torch.bfloat16, 64, False, False)
    with simulate_platform("cpu"):
        sel = select(c64, kernels=[PickyMP], raise_on_failure=False)
    assert sel.kernel is None and sel.reasons["fake.PickyMP"] == "group_size 64 not supported"


def test_vllm_named_wrappers(fresh_registry):
    c = MPLinearLayerConfig((512, 256), (512, 256), st.uint4b8, torch.bfloat16, 128, False, False)
    with override_settings(linear_backend="emulation"):
        assert qlinear.choose_mp_linear_kernel(c).__name__ == "EmulationMPLinearKernel"
        k = qlinear.init_fp8_linear_kernel(qk.kFp8DynamicTokenSym, qk.kFp8StaticChannelSym, torch.bfloat16, weight_shape=(256, 512))
        assert k.layer_param_names == ("weight", "weight_scale", "input_scale", "input_scale_ub")
        assert qlinear.init_int8_linear_kernel(True, False, True, weight_shape=(256, 512)).family == "int8"
        for init, fam in ((qlinear.init_nvfp4_linear_kernel, "nvfp4"), (qlinear.init_mxfp4_linear_kernel, "mxfp4"),
                          (qlinear.init_mxfp8_linear_kernel, "mxfp8")):
            assert init((256, 512)).family == fam
    with pytest.raises(ValueError, match="weight_shape"):
        qlinear.init_fp8_linear_kernel(qk.kFp8DynamicTokenSym, qk.kFp8StaticChannelSym, torch.bfloat16)


def test_register_linear_kernel_outranks_builtins(fresh_registry):
    class MyMP(StandIn, MPLinearKernel):
        priority = 1000


    c = MPLinearLayerConfig((512, 256), (512, 256), st.uint4b8, torch.bfloat16, 128, False, False)
    qlinear.register_linear_kernel(MyMP, "cuda", "mp")
    with simulate_platform("sm90"):
        assert qlinear.choose_mp_linear_kernel(c) is MyMP
    with simulate_platform("cpu"):  # registered for CUDA only
        assert qlinear.choose_mp_linear_kernel(c) is not MyMP
    with pytest.raises(ValueError, match="kernel_type"):
        qlinear.register_linear_kernel(MyMP, None, "fp8")


def test_settings_from_env():
    from qlinear.settings import Settings

    s = Settings.from_env({"QLINEAR_LINEAR_BACKEND": "triton,mp=marlin", "QLINEAR_DISABLED_KERNELS": "cutlass.*, Foo",
                           "QLINEAR_BATCH_INVARIANT": "1", "QLINEAR_FORCE_KERNEL": "X"})
    assert s.linear_backend == "triton" and s.backend_for("mp") == "marlin" and s.backend_for("fp8") == "triton"
    assert s.disabled_kernels == ("cutlass.*", "Foo") and s.batch_invariant and s.force_kernels == ("X",)
    with pytest.raises(ValueError, match="unknown family 'fp9'"):
        Settings.from_env({"QLINEAR_LINEAR_BACKEND": "fp9=triton"})


def test_simulated_platforms_describe_themselves():
    with simulate_platform("mi300") as p:
        assert p.is_rocm() and p.capability == 94 and p.simulated
        assert qlinear.current_platform() is p
    assert not qlinear.current_platform().simulated
    with pytest.raises(ValueError, match="preset"):
        with simulate_platform("sm999"):
            pass
    _ = warnings
