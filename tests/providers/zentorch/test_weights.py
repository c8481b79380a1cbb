"""Weight and scale validation: zentorch checks little and answers NaN or garbage for a wrong
scale layout, so the kernels check shapes themselves and name the field."""

import pytest
import torch

from qlinear import testing
from qlinear.config import Int8ScaledMMLinearLayerConfig, MPLinearLayerConfig
from qlinear.layers import make_layer, quantize_layer_params
from qlinear.scalar_type import scalar_types as st

pytest.importorskip("zentorch")

from qlinear_zentorch.int8 import ZentorchInt8ScaledMMLinearKernel  # noqa: E402
from qlinear_zentorch.mp import ZentorchWNA16LinearKernel  # noqa: E402

pytestmark = pytest.mark.usefixtures("any_cpu")

MP = MPLinearLayerConfig((512, 256), (512, 256), st.uint4b8, torch.bfloat16, 128, False, False)  # G = 4
MP_ZP = MPLinearLayerConfig((512, 256), (512, 256), st.uint4, torch.bfloat16, 64, True, False)
I8 = Int8ScaledMMLinearLayerConfig(False, True, True, (256, 512), torch.bfloat16)


def _layer(c, seed=0):
    g = torch.Generator().manual_seed(seed)
    n, k = c.shape_nk
    return make_layer(c, quantize_layer_params(c, torch.randn(n, k, generator=g) * 0.05)), torch.randn(3, k, generator=g).bfloat16()


def _processed(kernel_cls, c, seed=0):
    layer, x = _layer(c, seed)
    k = kernel_cls.create(c)
    k.process_weights_after_loading(layer)
    return k, layer, x


def test_raw_op_does_not_check_scale_layout():
    """Why the checks exist: zentorch_woq_linear accepts a [G', N] scale with too few groups (it
    reads past the buffer: NaN in some runs, plausible numbers in others) and computes garbage from a
    strided [G, N] view, raising nothing either way."""
    from qlinear_zentorch import gate

    k, layer, x = _processed(ZentorchWNA16LinearKernel, MP)
    woq = gate.op("zentorch_woq_linear")
    s = layer.weight_scale.data  # [G=4, N], contiguous
    good = woq(x, layer.weight_packed.t(), s, None, None).double()
    try:
        woq(x, layer.weight_packed.t(), s[:2].contiguous(), None, None)
        strided = woq(x, layer.weight_packed.t(), s.t().contiguous().t(), None, None).double()
    except RuntimeError:
        pytest.skip("this zentorch checks scale layouts itself")
    assert not torch.isfinite(strided).all() or float((strided - good).norm() / good.norm()) > 0.05


def test_transposed_scale_rejected_at_load():
    layer, _ = _layer(MP)
    layer.weight_scale.data = layer.weight_scale.data.t().contiguous()  # [G, N] where [N, G] is the layout
    with pytest.raises(ValueError, match=r"weight_scale\.shape: expected \[256, 4\]"):
        ZentorchWNA16LinearKernel.create(MP).process_weights_after_loading(layer)


@pytest.mark.parametrize("bad", ["NG", "too_few_groups", "strided", "bf16"])
def test_wrong_scale_rejected_at_apply(bad):
    k, layer, x = _processed(ZentorchWNA16LinearKernel, MP)
    s = layer.weight_scale.data  # [4, 256] float32
    new = {"NG": s.t().contiguous(), "too_few_groups": s[:2].contiguous(),
           "strided": s.t().contiguous().t(), "bf16": s.bfloat16()}[bad]
    k.replace_parameter(layer, "weight_scale", new)
    with pytest.raises(ValueError, match="weight_scale"):
        k.apply(layer, x)


def test_wrong_zero_point_rejected():
    layer, _ = _layer(MP_ZP)
    layer.weight_zero_point.data = layer.weight_zero_point.data.t().contiguous()
    with pytest.raises(ValueError, match=r"weight_zero_point\.shape"):
        ZentorchWNA16LinearKernel.create(MP_ZP).process_weights_after_loading(layer)
    k, layer, x = _processed(ZentorchWNA16LinearKernel, MP_ZP)
    k.replace_parameter(layer, "weight_zero_point", layer.weight_zero_point.data.int())
    with pytest.raises(ValueError, match=r"weight_zero_point\.dtype"):
        k.apply(layer, x)


def test_wrong_packed_weight_rejected():
    layer, _ = _layer(MP)
    layer.weight_packed.data = layer.weight_packed.data[:, :-1].contiguous()
    with pytest.raises(ValueError, match=r"weight_packed\.shape"):
        ZentorchWNA16LinearKernel.create(MP).process_weights_after_loading(layer)


@pytest.mark.parametrize("shape", [(256, 2), (255, 1), (2,)])
def test_int8_wrong_scale_shape_rejected_at_load(shape):
    layer, _ = _layer(I8)
    layer.weight_scale.data = torch.rand(shape)
    with pytest.raises(ValueError, match=r"weight_scale\.shape"):
        ZentorchInt8ScaledMMLinearKernel.create(I8).process_weights_after_loading(layer)


def test_int8_wrong_scale_rejected_at_apply():
    k, layer, x = _processed(ZentorchInt8ScaledMMLinearKernel, I8)
    k.replace_parameter(layer, "weight_scale", layer.weight_scale.data[:1].clone())  # per-tensor [1]: op gives NaN
    with pytest.raises(ValueError, match="weight_scale"):
        k.apply(layer, x)


def test_int8_non_finite_rows_come_out_nan_and_an_empty_batch_is_empty():
    """The op's per-token quantization turned a row holding inf / NaN into finite numbers (AMD EPYC,
    zentorch 2.13.0.2) and failed on M = 0; the kernel carries such rows as NaN and skips the op at M = 0."""
    k, layer, x = _processed(ZentorchInt8ScaledMMLinearKernel, I8)
    x = torch.cat([x, x[:1]])  # rows 0..3, row 3 a copy of row 0
    x[1, 5] = float("inf")
    x[2, 7] = float("nan")
    y = k.apply_weights(layer, x)
    assert not torch.isfinite(y[1]).any() and not torch.isfinite(y[2]).any()
    assert torch.isfinite(y[0]).all() and torch.equal(y[0], y[3])
    empty = k.apply_weights(layer, x[:0])
    assert empty.shape == (0, 256) and empty.dtype == x.dtype


def test_int8_wrong_weight_rejected():
    layer, _ = _layer(I8)
    layer.weight.data = layer.weight.data.float()
    with pytest.raises(ValueError, match="weight: expected a 2-D int8"):
        ZentorchInt8ScaledMMLinearKernel.create(I8).process_weights_after_loading(layer)


@pytest.mark.parametrize("kernel,c", [(ZentorchWNA16LinearKernel, MP), (ZentorchWNA16LinearKernel, MP_ZP),
                                      (ZentorchInt8ScaledMMLinearKernel, I8)], ids=["mp", "mp_zp", "int8"])
def test_layers_at_reused_addresses_stay_correct(kernel, c):
    """ZenDNN caches reordered weights by address. Build, run and free layers one after another (the
    allocator hands the freed addresses straight back): each must compute with its own weights.
    Without weight_cache.place() the MP cases fail here with NaN or errors of 100 %+."""
    for seed in range(6):
        case = testing.Case(c, m=5)
        params, x, bias = testing.make_case_layer(case, "cpu", seed=seed)
        from qlinear.formats import reference_linear

        ref = reference_linear(c, params, x, bias, quantize_activation=kernel.quantizes_activation)
        layer = make_layer(c, params)
        k = kernel.create(c)
        k.process_weights_after_loading(layer)
        out = k.apply(layer, x, bias).double()
        err = float((out - ref).norm() / ref.norm())
        assert err < testing.TOLERANCE[c.family], f"seed {seed}: relative error {err:.3g}"
        del layer, k, params, out


def test_repack_is_compressed_tensors_packing_xor_0x88888888():
    """The layout fact the MP kernel relies on (and the provider's README records), checked against zentorch's op."""
    from qlinear.formats.int_pack import pack_along
    from qlinear_zentorch import gate

    q = torch.randint(-8, 8, (64, 256), generator=torch.Generator().manual_seed(0), dtype=torch.int32)
    ct = pack_along(q + 8, 4, 1)  # uint4b8 as compressed-tensors stores it
    rep = gate.op("zentorch_woq_repack_weight")(q.to(torch.int8))
    assert torch.equal(rep, ct ^ torch.tensor(0x88888888 - (1 << 32), dtype=torch.int32))
    u = q + 8  # unsigned codes (the zero-point path): repack equals compressed-tensors packing
    assert torch.equal(gate.op("zentorch_woq_repack_weight")(u.to(torch.int8)), pack_along(u, 4, 1))


def test_op_signatures():
    """The argument order the kernels call with, read from the registered schemas."""
    from qlinear_zentorch import gate

    def args(name):
        return [a.name for a in gate.op(name).default._schema.arguments]

    assert args("zentorch_woq_linear")[:5] == ["input", "weight", "weight_scales", "weight_zero_points", "bias"]
    assert args("zentorch_dynamic_qlinear")[:5] == ["input", "weight", "weight_scales", "bias", "is_weight_prepacked"]
    assert args("zentorch_weight_prepack_for_dynamic_qlinear")[:2] == ["weight", "input_zero_points_defined"]
    assert args("zentorch_woq_repack_weight") == ["unpacked_weight"]


def test_act_order_sorts_channels_once():
    """g_idx: channels are sorted by group at load (codes permuted), x is gathered per call."""
    c = MPLinearLayerConfig((512, 256), (512, 256), st.uint4b8, torch.bfloat16, 64, False, True)
    k, layer, x = _processed(ZentorchWNA16LinearKernel, c)
    perm = layer.qlinear_zentorch_perm
    assert sorted(perm.tolist()) == list(range(512))
    assert torch.equal(layer.weight_g_idx.long()[perm], torch.arange(512) // 64)


def test_bad_g_idx_rejected():
    c = MPLinearLayerConfig((512, 256), (512, 256), st.uint4b8, torch.bfloat16, 64, False, True)
    layer, _ = _layer(c)
    layer.weight_g_idx.data = torch.zeros(512, dtype=torch.int32)  # every channel in group 0
    with pytest.raises(ValueError, match="weight_g_idx: every group must hold exactly 64 channels"):
        ZentorchWNA16LinearKernel.create(c).process_weights_after_loading(layer)


def test_raw_int8_op_facts_the_kernel_works_around():
    """zentorch_dynamic_qlinear: fp16 input gives wrong results silently (Intel Xeon) or is refused (AMD
    EPYC without AVX512-FP16), a per-tensor [1] scale gives wrong results silently (the kernel widens
    fp16 to fp32 and expands the scale to [N]); fp32 input is exact."""
    from qlinear_zentorch import gate

    g = torch.Generator().manual_seed(0)
    w = torch.randint(-127, 128, (256, 512), generator=g, dtype=torch.int8)
    s = torch.rand(256, generator=g) * 1e-3
    x = torch.randn(4, 512, generator=g)
    xs = x.abs().amax(1, keepdim=True) / 127
    ref = ((torch.round(x / xs) * xs).double() @ (w.double() * s.double()[:, None]).t())
    # prepacked, as the kernel does: a plain int8 weight would meet ZenDNN's address-keyed cache
    # (an earlier test's freed weight at the same address) and give garbage for that reason alone
    w = gate.op("zentorch_weight_prepack_for_dynamic_qlinear")(w, False)
    op = gate.op("zentorch_dynamic_qlinear")

    def dq(x, w, s):
        return op(x, w, s, None, is_weight_prepacked=True)

    def err(out):
        return float((out.double() - ref).norm() / ref.norm())

    assert err(dq(x, w, s)) < 1e-5  # fp32: right
    assert err(dq(x.bfloat16(), w, s)) < 2e-2  # bf16: right (bf16 rounding of x and out)
    try:
        fp16 = dq(x.half(), w, s)
    except RuntimeError:  # AMD EPYC without AVX512-FP16: refused ("F16 data type is not supported")
        fp16 = None
    assert fp16 is None or not torch.isfinite(fp16).all() or err(fp16) > 0.1  # fp16: wrong, silently (Xeon)
    st1 = torch.full((1,), 1e-3)
    ref1 = ref / s.double() * 1e-3
    per_tensor = dq(x, w, st1).double()
    assert not torch.isfinite(per_tensor).all() or float((per_tensor - ref1).norm() / ref1.norm()) > 0.1
