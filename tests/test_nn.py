"""QuantLinear: from a float nn.Linear + scheme, quantize, select, run; bad input names the field."""

import pytest
import torch

import qlinear
from qlinear import testing
from qlinear.formats import reference_linear
from qlinear.layers import make_layer, quantize_layer_params, validate_params
from qlinear.nn import SCHEMES, QuantLinear, scheme_config

# Error of the quantized layer against the FLOAT layer: the format's own loss, bounded loosely per
# scheme (4-bit ~7%, 8-bit ~1%, fp8 ~4%, fp4 W4A4 ~16% on uniform-random weights).
FORMAT_LOSS = {"w4a16": 0.1, "awq": 0.1, "w8a16": 0.01, "int8": 0.02, "fp8": 0.05, "nvfp4": 0.2, "mxfp4": 0.2, "mxfp8": 0.05, "w4a8": 0.1}


@pytest.fixture(scope="module")
def linear():
    torch.manual_seed(0)
    return torch.nn.Linear(512, 256).bfloat16()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_runs_and_matches(linear, scheme):
    x = torch.randn(5, 512, dtype=torch.bfloat16)
    config = scheme_config(scheme, 256, 512)
    params = quantize_layer_params(config, linear.weight.detach().float(), calib_x=x)
    bias = linear.bias.detach()
    q = QuantLinear(config, {k: v.clone() for k, v in params.items()}, bias)
    y = q(x)
    assert y.shape == (5, 256) and y.dtype == torch.bfloat16 and torch.isfinite(y).all()
    # equals the format reference on the as-loaded parameters (what the selected kernel must compute) ...
    ref = reference_linear(config, params, x, bias, q.kernel.quantizes_activation)
    tol = testing.TOLERANCE[config.family]
    assert float((y.double() - ref).norm() / ref.norm()) < tol, q.kernel.full_name()
    # ... and is close to the float layer, within the format's loss
    fl = linear(x).detach().double()
    loss = FORMAT_LOSS[scheme.split("-")[0]]
    assert float((y.double() - fl).norm() / fl.norm()) < loss
    # from_linear builds the same layer
    assert QuantLinear.from_linear(linear, scheme, calib_x=x).config == config
    # leading dims are kept
    assert q(x.reshape(5, 1, 512)).shape == (5, 1, 256)
    assert q.selection.kernel is type(q.kernel) and q.kernel.full_name() in repr(q)


def test_static_schemes_need_calibration(linear):
    for s in ("int8-static", "fp8-tensor", "nvfp4"):
        with pytest.raises(ValueError, match="calib_x"):
            QuantLinear.from_linear(linear, s)


def test_unknown_scheme(linear):
    with pytest.raises(ValueError, match="scheme: unknown 'w3a16'"):
        QuantLinear.from_linear(linear, "w3a16")


def test_scheme_any_group_size():
    c = scheme_config("w4a16-g256", 256, 1024)
    assert c.group_size == 256 and c.weight_type.name == "uint4b8"
    with pytest.raises(ValueError, match="group_size"):
        scheme_config("w4a16-g100", 256, 1024)  # K=1024 not divisible by 100


def test_bad_inputs_name_the_field(linear):
    q = QuantLinear.from_linear(linear, "w4a16-g128")
    x = torch.randn(3, 512, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match=r"x\.dtype: layer expects torch.bfloat16, got torch.float32"):
        q(x.float())
    with pytest.raises(ValueError, match=r"x\.shape: last dimension must be K=512"):
        q(x[:, :500])
    with pytest.raises(ValueError, match=r"x\.device"):
        q(torch.empty(3, 512, dtype=torch.bfloat16, device="meta"))
    with pytest.raises(TypeError, match="x: expected a torch.Tensor"):
        q([[1.0] * 512])


def test_group_not_dividing_k_is_a_config_error():
    lin = torch.nn.Linear(200, 64)  # K=200: not divisible by 128
    with pytest.raises(ValueError, match="group_size"):
        QuantLinear.from_linear(lin, "w4a16-g128")
    with pytest.raises(ValueError, match="weight_shape: K=200 is not a multiple of the 32-element"):
        QuantLinear.from_linear(lin, "mxfp4")


@pytest.mark.parametrize("scheme,name,bad", [
    ("w4a16-g128", "weight_scale", lambda t: t.t().contiguous()),  # [G, N] instead of [N, G]
    ("awq-g128", "weight_zero_point", lambda t: t[:-1]),
    ("int8-dynamic", "weight_scale", lambda t: t[:-1]),
    ("fp8-dynamic", "weight", lambda t: t.to(torch.bfloat16)),
    ("fp8-block", "weight_scale_inv", lambda t: t[:, :1]),
    ("nvfp4", "weight_scale", lambda t: t.view(torch.uint8)),
    ("mxfp4", "weight_scale", lambda t: t[:, :-1]),
    ("mxfp8", "weight", lambda t: t[:, :-32]),
])
def test_wrong_parameter_shape_or_dtype_names_it(scheme, name, bad):
    c = scheme_config(scheme, 256, 512)
    x = torch.randn(4, 512)
    params = quantize_layer_params(c, torch.randn(256, 512) * 0.05, calib_x=x)
    params[name] = bad(params[name])
    with pytest.raises(ValueError, match=rf"^{name}\.(shape|dtype)"):
        validate_params(c, params)
    with pytest.raises(ValueError, match=rf"^{name}\."):
        QuantLinear(c, params)


def test_missing_parameter_names_it():
    c = scheme_config("awq-g128", 256, 512)
    params = quantize_layer_params(c, torch.randn(256, 512))
    del params["weight_zero_point"]
    with pytest.raises(ValueError, match="weight_zero_point: missing"):
        make_layer(c, params)


def test_forcing_a_kernel_that_cannot_run_is_an_error(linear):
    with pytest.raises((ValueError, qlinear.NoKernelError), match="NoSuchKernel|cannot run"):
        QuantLinear.from_linear(linear, "w4a16-g128", kernel="NoSuchKernel")


def test_autotune_dispatches_per_m_bucket_and_caches(tmp_path, monkeypatch, linear, fresh_registry):
    """With two usable kernels, autotune times both per M bucket, dispatches to a winner, and the
    second layer of the same shape reads the JSON cache instead of timing again."""
    from qlinear import autotune
    from qlinear.settings import override_settings

    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent / "fixtures" / "provider" / "qlinear_fixture" / "__init__.py"
    spec = importlib.util.spec_from_file_location("qlinear_fixture_for_autotune", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    FixtureMPLinearKernel = mod.FixtureMPLinearKernel

    monkeypatch.setenv("QLINEAR_CACHE_DIR", str(tmp_path))
    qlinear.register_linear_kernel(FixtureMPLinearKernel, None, "mp", priority=5)
    with override_settings(autotune=True):
        q = QuantLinear.from_linear(linear, "w4a16-g128")
        assert q.dispatch is not None and set(q.autotune_winners) == {str(hi) for hi, _ in autotune.BUCKETS}
        assert autotune.cache_path().exists()
        x = torch.randn(3, 512, dtype=torch.bfloat16)
        # the tuned layer keeps only its winners' re-laid copies: the reference quantizes afresh
        ref = reference_linear(q.config, qlinear.quantize_layer_params(q.config, linear.weight.detach().float()), x, q.bias)
        assert float((q(x).double() - ref).norm() / ref.norm()) < 1e-2
        calls = []
        monkeypatch.setattr("qlinear.timing.time_calls", lambda *a, **k: calls.append(1))
        q2 = QuantLinear.from_linear(linear, "w4a16-g128")
        assert calls == [] and q2.autotune_winners == q.autotune_winners


def test_pickle_rebuilds_the_layer_from_its_as_loaded_parameters(linear):
    import pickle

    x = torch.randn(5, 512, dtype=torch.bfloat16)
    q = QuantLinear.from_linear(linear, "w4a16-g128", keep_loaded_params=True)
    r = pickle.loads(pickle.dumps(q))
    assert r is not q and r._handle != q._handle and r.config == q.config
    assert torch.equal(r(x), q(x)) and r.kernel.full_name() == q.kernel.full_name()
    assert sorted(r.loaded_params) == sorted(q.loaded_params)
    for k, v in q.loaded_params.items():
        assert torch.equal(r.loaded_params[k], v)
    # without the as-loaded parameters there is nothing portable to store: a clear error, not a pickle one
    with pytest.raises(TypeError, match="keep_loaded_params=True.*save_quantized"):
        pickle.dumps(QuantLinear.from_linear(linear, "w4a16-g128"))


def test_torch_save_of_a_quantized_model_and_deepcopy():
    import copy
    import io

    import qlinear

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64)).bfloat16()
    qlinear.quantize_model(model, "int8-dynamic", skip=(), show_progress=False)
    x = torch.randn(3, 256, dtype=torch.bfloat16)
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert isinstance(loaded[0], QuantLinear) and torch.equal(loaded(x), model(x))
    assert loaded[0].checkpoint_params.keys() == model[0].checkpoint_params.keys()
    twin = copy.deepcopy(model)  # in-process copies keep their kernels as they are
    assert twin[0].kernel is not model[0].kernel and twin[0]._handle != model[0]._handle
    assert torch.equal(twin(x), model(x))
