"""Bad input through the public API, scheme by scheme: each gives the right result or an error that
names the field (never a silent NaN, a saturated value or a cryptic message from deep inside)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

import qlinear
from qlinear.formats import reference_linear
from qlinear.layers import quantize_layer_params
from qlinear.nn import QuantLinear
from qlinear.settings import Settings, override_settings, reload_settings

N, K = 128, 256
SCHEMES = ["w4a16-g128", "awq-g128", "w8a16-ch", "int8-dynamic", "int8-static", "int8-static-asym", "fp8-tensor",
           "fp8-dynamic", "fp8-block", "nvfp4", "mxfp4", "mxfp8"]
STATIC = {"int8-static", "int8-static-asym", "fp8-tensor", "nvfp4"}


@pytest.fixture(scope="module")
def linear():
    torch.manual_seed(0)
    return torch.nn.Linear(K, N).bfloat16()


@pytest.fixture(scope="module")
def calib():
    torch.manual_seed(1)
    return torch.randn(16, K, dtype=torch.bfloat16)


_layers: dict[str, QuantLinear] = {}


def _layer(scheme, linear, calib) -> QuantLinear:
    if scheme not in _layers:
        _layers[scheme] = QuantLinear.from_linear(linear, scheme, calib_x=calib)
    return _layers[scheme]


def _x(m=4, seed=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, K, generator=g).bfloat16()


def _rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


def _reference(q: QuantLinear, linear, calib, x):
    params = quantize_layer_params(q.config, linear.weight.detach().float(), calib_x=calib)
    return reference_linear(q.config, params, x, q.bias, quantize_activation=q.kernel.quantizes_activation)


# ---- activations ------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", SCHEMES)
def test_non_finite_activation_rows_come_out_non_finite(scheme, linear, calib):
    """A row holding inf or NaN comes out NaN/inf, and the other rows are still right. Static
    scales used to clamp inf to the largest code and integer codes dropped NaN: finite garbage."""
    q = _layer(scheme, linear, calib)
    x = _x(5)
    x[1, 3] = float("inf")
    x[2, 9] = float("nan")
    x[3, 0] = float("-inf")
    y = q(x)
    assert (~torch.isfinite(y[1:4])).all(), f"{scheme} ({q.kernel.full_name()}): a non-finite input row came out finite"
    good = [0, 4]
    ref = _reference(q, linear, calib, x[good])
    assert torch.isfinite(y[good]).all() and _rel(y[good], ref) < 5e-2


@pytest.mark.parametrize("scheme", SCHEMES)
def test_shapes_strides_and_empty_batches_give_the_right_result(scheme, linear, calib):
    q = _layer(scheme, linear, calib)
    x = _x(4)
    y = q(x)
    assert y.shape == (4, N)
    wide = torch.zeros(4, 2 * K, dtype=x.dtype)
    wide[:, ::2] = x
    strided = wide[:, ::2]  # stride 2 along K
    assert not strided.is_contiguous()
    assert torch.equal(q(strided), y)
    assert torch.equal(q(x.reshape(2, 2, K)), y.reshape(2, 2, N))  # 3-D [B, T, K]
    assert q(x[:0]).shape == (0, N)  # M = 0
    assert q(x[:0].reshape(0, 3, K)).shape == (0, 3, N)


@pytest.mark.parametrize("scheme", ["w4a16-g128", "int8-dynamic", "fp8-tensor", "mxfp4"])
def test_wrong_activation_names_the_field(scheme, linear, calib):
    q = _layer(scheme, linear, calib)
    with pytest.raises(ValueError, match=r"^x\.shape"):
        q(torch.randn(4, K + 1, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match=r"^x\.dtype"):
        q(torch.randn(4, K))  # float32 into a bfloat16 layer
    with pytest.raises(ValueError, match=r"^x\.dtype"):
        q(torch.ones(4, K, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"^x\.device"):
        q(torch.empty(4, K, dtype=torch.bfloat16, device="meta"))
    with pytest.raises(TypeError, match=r"^x:"):
        q([[1.0] * K])
    with pytest.raises(ValueError, match=r"^x\.shape"):
        q(torch.tensor(1.0, dtype=torch.bfloat16))  # 0-D


# ---- weights and calibration data ------------------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
@pytest.mark.parametrize("scheme", ["w4a16-g128", "awq-g128", "int8-dynamic", "fp8-block", "nvfp4", "mxfp4"])
def test_non_finite_weight_is_named(scheme, bad, calib):
    lin = torch.nn.Linear(K, N).bfloat16()
    with torch.no_grad():
        lin.weight[3, 7] = bad
    with pytest.raises(ValueError, match=r"^linear\.weight: .*non-finite"):
        QuantLinear.from_linear(lin, scheme, calib_x=calib)
    with pytest.raises(ValueError, match=r"^w: .*non-finite"):
        quantize_layer_params(qlinear.nn.scheme_config(scheme, N, K), lin.weight.detach().float(), calib_x=calib)


@pytest.mark.parametrize("scheme", sorted(STATIC))
def test_bad_calibration_is_named(scheme, linear, calib):
    c = calib.clone()
    c[2, 5] = float("nan")
    with pytest.raises(ValueError, match=r"^calib_x: .*non-finite"):
        QuantLinear.from_linear(linear, scheme, calib_x=c)
    c = calib.clone()
    c[0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"^calib_x: .*non-finite"):
        QuantLinear.from_linear(linear, scheme, calib_x=c)
    with pytest.raises(ValueError, match=r"^calib_x\.shape: last dimension must be K=256"):
        QuantLinear.from_linear(linear, scheme, calib_x=torch.randn(8, K // 2, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match=r"^calib_x\.shape"):
        QuantLinear.from_linear(linear, scheme, calib_x=torch.randn(0, K, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match=r"^calib_x\.dtype"):
        QuantLinear.from_linear(linear, scheme, calib_x=torch.ones(8, K, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"^calib_x"):
        QuantLinear.from_linear(linear, scheme, calib_x=[[0.0] * K])
    with pytest.raises(ValueError, match=r"^calib_x"):
        QuantLinear.from_linear(linear, scheme)
    # 3-D calibration data is fine: [batch, tokens, K]
    QuantLinear.from_linear(linear, scheme, calib_x=calib.reshape(2, 8, K))


def test_calibration_with_wrong_k_is_an_error_even_where_unused(linear):
    with pytest.raises(ValueError, match=r"^calib_x\.shape"):
        QuantLinear.from_linear(linear, "fp8-dynamic", calib_x=torch.randn(4, K + 8, dtype=torch.bfloat16))


def test_bias_and_module_type_are_named(linear):
    q = QuantLinear.from_linear(linear, "w4a16-g128")
    with pytest.raises(ValueError, match=r"^bias\.shape"):
        q.kernel.apply(q, _x(), torch.zeros(N + 1, dtype=torch.bfloat16))
    with pytest.raises(TypeError, match=r"^linear:"):
        QuantLinear.from_linear(torch.nn.Conv1d(4, 4, 1), "w4a16-g128")
    with pytest.raises(ValueError, match=r"^scheme:"):
        QuantLinear.from_linear(linear, "w3a16")


# ---- kernel= and where the weights live -------------------------------------------------------------
def test_requested_kernel_by_full_name_runs(linear):
    """``kernel="provider.Name"`` used to select that kernel and then raise "cannot run this layer here"."""
    q = QuantLinear.from_linear(linear, "w4a16-g128", kernel="emulation.EmulationMPLinearKernel")
    assert q.kernel.full_name() == "emulation.EmulationMPLinearKernel"
    q = QuantLinear.from_linear(linear, "w4a16-g128", kernel="EmulationMPLinearKernel")
    assert q.kernel.full_name() == "emulation.EmulationMPLinearKernel"


def test_requested_kernel_that_cannot_run_says_why_up_front(linear):
    pytest.importorskip("qlinear_triton")
    with pytest.raises(ValueError, match=r"^kernel: triton\.TritonW4A16LinearKernel cannot run this layer here: "
                                         r"forced, but needs a CUDA"):
        QuantLinear.from_linear(linear, "w4a16-g128", kernel="triton.TritonW4A16LinearKernel")
    with pytest.raises(ValueError, match=r"^kernel: no registered mp kernel is named 'NoSuchKernel'"):
        QuantLinear.from_linear(linear, "w4a16-g128", kernel="NoSuchKernel")


@pytest.mark.parametrize("preset", ["sm90", "sm100", "mi300"])
def test_cpu_layer_on_a_gpu_platform_gets_a_cpu_kernel(preset, linear):
    """Under a simulated GPU machine, a layer whose weights are on the CPU used to get GPU kernels
    (triton on sm90) and die in the driver at the first call."""
    with qlinear.simulate_platform(preset):
        q = QuantLinear.from_linear(linear, "w4a16-g128")
        assert q.selection.platform.kind == "cpu"
        # ... chosen for this machine's real CPU, not the simulated one (its AMX Xeon flags picked an
        # AMX kernel on an AMD host, which failed at load)
        assert q.selection.platform.cpu_flags == qlinear.platform.detect_platform().cpu_flags
        y = q(_x())
    assert torch.isfinite(y).all() and y.shape == (4, N)
    assert q.kernel.backend not in ("triton", "marlin", "fbgemm", "flashinfer"), q.kernel.full_name()
    # the engine-facing selector (no tensors) still answers for the simulated machine
    with qlinear.simulate_platform(preset):
        assert qlinear.select(q.config).platform.kind != "cpu"


# ---- environment ------------------------------------------------------------------------------------
@pytest.mark.parametrize("var", ["QLINEAR_AUTOTUNE", "QLINEAR_STRICT_BACKEND", "QLINEAR_BATCH_INVARIANT",
                                 "QLINEAR_ZENTORCH_ANY_CPU"])
@pytest.mark.parametrize("value", ["2", "maybe", "enable"])
def test_switch_with_an_undocumented_value_names_the_variable(var, value):
    with pytest.raises(ValueError, match=rf"^{var}: '{value}' is not a switch"):
        Settings.from_env({var: value})


@pytest.mark.parametrize("value,want", [("1", True), ("true", True), ("ON", True), ("yes", True),
                                        ("0", False), ("false", False), ("off", False), ("", False), (" no ", False)])
def test_switch_documented_values(value, want):
    assert Settings.from_env({"QLINEAR_AUTOTUNE": value}).autotune is want


def test_bad_switch_in_the_environment_fails_at_selection(monkeypatch, linear):
    monkeypatch.setenv("QLINEAR_AUTOTUNE", "2")
    try:
        with pytest.raises(ValueError, match="^QLINEAR_AUTOTUNE"):
            reload_settings()
    finally:
        monkeypatch.delenv("QLINEAR_AUTOTUNE")
        reload_settings()


def test_backend_with_unknown_family_names_the_variable():
    with pytest.raises(ValueError, match="^QLINEAR_LINEAR_BACKEND: unknown family 'w4'"):
        Settings.from_env({"QLINEAR_LINEAR_BACKEND": "auto,w4=marlin"})


@pytest.mark.parametrize("var,field", [("QLINEAR_FORCE_KERNEL", "force_kernels"),
                                       ("QLINEAR_DISABLED_KERNELS", "disabled_kernels")])
def test_unknown_kernel_names_warn(var, field, linear):
    name = f"NoSuchKernel{field}"
    with override_settings(**{field: (name, "EmulationMPLinearKernel")}):
        with pytest.warns(UserWarning, match=rf"^{var}: '{name}' match no registered kernel"):
            QuantLinear.from_linear(linear, "w4a16-g128")
    with override_settings(**{field: ("torch.*",)}):  # a glob that matches: no warning
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            QuantLinear.from_linear(linear, "int8-dynamic")


def test_bad_integer_knobs_warn_and_keep_the_provider():
    """QLINEAR_TRITON_W4A16_DENSE_MIN_M / QLINEAR_MARLIN_DEQUANT_MIN_M that are not integers used to
    make the provider's import fail: the whole provider silently dropped out of selection."""
    pytest.importorskip("qlinear_triton")
    pytest.importorskip("qlinear_marlin")
    code = textwrap.dedent("""
        import warnings
        warnings.simplefilter("always")
        import qlinear
        reg = qlinear.get_registry()
        for name in ("triton", "marlin"):
            assert reg.providers[name].ok, (name, reg.providers[name].error)
        from qlinear_triton.mp import TritonW4A16LinearKernel
        from qlinear_marlin.mp import MarlinMPLinearKernel
        assert TritonW4A16LinearKernel.dense_min_m == 128 and MarlinMPLinearKernel.dequant_min_m == 128
        print("OK")
    """)
    env = {**os.environ, "QLINEAR_TRITON_W4A16_DENSE_MIN_M": "12x", "QLINEAR_MARLIN_DEQUANT_MIN_M": "-3"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "OK" in r.stdout, (r.stdout, r.stderr[-3000:])
    assert "QLINEAR_TRITON_W4A16_DENSE_MIN_M='12x' is not an integer" in r.stderr
    assert "QLINEAR_MARLIN_DEQUANT_MIN_M='-3' is not an integer >= 0" in r.stderr


def test_only_kernels_that_quantize_x_pay_for_the_non_finite_pass(linear, calib, fresh_registry):
    """The NaN-row pass (two elementwise kernels per call) is for kernels that quantize x with a static
    scale; a weight-only kernel of such a format (marlin / triton NVFP4, the cpu FP8 kernels) computes
    with x itself, so inf and NaN reach the output by IEEE arithmetic, and the pass is skipped."""
    import qlinear
    from qlinear_emulation.kernels import EmulationNvFp4LinearKernel

    class WeightOnlyNvFp4(EmulationNvFp4LinearKernel):
        quantizes_activation = False

    q = _layer("nvfp4", linear, calib)
    assert q.kernel.quantizes_activation and q._saturates
    qlinear.register_linear_kernel(WeightOnlyNvFp4, None, WeightOnlyNvFp4.family)
    w = QuantLinear.from_linear(linear, "nvfp4", calib_x=calib, kernel=WeightOnlyNvFp4)
    assert not w._saturates
    x = _x(3)
    x[1, 3] = float("inf")
    y = w(x)
    assert not torch.isfinite(y[1]).all() and torch.isfinite(y[[0, 2]]).all()
