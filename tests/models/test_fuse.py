"""fuse_projections: q/k/v and gate/up of a transformers Llama run as one GEMM each, with the same
outputs as the separate layers, eager and under torch.compile; float models fused before
quantize_model, quantized ones (quantize_model, load_quantized) from their layers' parameters."""

import pytest
import torch

import qlinear
from qlinear import QuantLinear
from qlinear.models.fuse import FusedProjection, fuse_projections


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits.float()


def test_fused_float_model_is_the_same_model(make_llama, ids):
    model = make_llama(layers=2)
    ref = _logits(model, ids)
    names = fuse_projections(model)
    assert names == [f"model.layers.{i}.{g}" for i in range(2)
                     for g in ("self_attn.q_proj+k_proj+v_proj", "mlp.gate_proj+up_proj")]
    attn = model.model.layers[0].self_attn
    assert isinstance(attn.q_proj, FusedProjection) and attn.q_proj.fused.weight.shape == (256 + 2 * 128, 256)
    assert attn.k_proj.fused is None and attn.v_proj.out_features == 128
    # one fused GEMM per group: the same logits up to the GEMM's reduction order (bf16 outputs)
    out = _logits(model, ids)
    assert (out - ref).abs().max() <= 0.02 * ref.abs().max(), (out - ref).abs().max()
    # the fused weight is the members' rows, in order
    assert "q_proj+k_proj+v_proj[256:384]" in repr(attn.k_proj)


def test_quantized_fused_equals_quantized_members(make_llama, ids):
    """A per-channel scheme quantizes each output row on its own, so quantizing the fused layer
    gives the members' quantized rows: same logits as quantizing them separately."""
    plain, fused = make_llama(), make_llama()
    qlinear.quantize_model(plain, "w8a16-ch", show_progress=False)
    fuse_projections(fused)
    new = qlinear.quantize_model(fused, "w8a16-ch", show_progress=False)
    # four GEMMs per layer: the two fused groups, o_proj and down_proj
    assert sorted(new) == sorted(f"model.layers.0.{n}" for n in ("self_attn.q_proj.fused", "self_attn.o_proj",
                                                                 "mlp.gate_proj.fused", "mlp.down_proj"))
    assert isinstance(fused.model.layers[0].mlp.gate_proj.fused, QuantLinear)
    a, b = _logits(plain, ids), _logits(fused, ids)
    assert (a - b).abs().max() <= 0.02 * a.abs().max(), (a - b).abs().max()


def test_member_called_with_another_input_runs_the_group():
    """Call order is free: a member called with a tensor the head did not see runs the group."""
    parent = torch.nn.Module()
    parent.a, parent.b = torch.nn.Linear(8, 4), torch.nn.Linear(8, 6)
    wa, wb = parent.a.weight.detach().clone(), parent.b.weight.detach().clone()
    fuse_projections(parent, groups=[("a", "b")])
    x, y = torch.randn(3, 8), torch.randn(3, 8)
    with torch.no_grad():
        out_b = parent.b(y)  # b first, on its own input
        out_a = parent.a(x)
        out_b2 = parent.b(x)
    torch.testing.assert_close(out_b, y @ wb.t() + parent.a.fused.bias[4:])
    torch.testing.assert_close(out_a, x @ wa.t() + parent.a.fused.bias[:4])
    torch.testing.assert_close(out_b2, x @ wb.t() + parent.a.fused.bias[4:])


def test_group_output_is_not_held_past_the_last_member(make_llama, ids):
    """The fused output (large at prefill) is dropped once the group's last member took its columns,
    and a member called after that runs the group again: correct in any order."""
    model = make_llama()
    fuse_projections(model)
    attn = model.model.layers[0].self_attn
    _logits(model, ids)
    assert attn.q_proj.out.x is None and attn.q_proj.out.y is None
    x = torch.randn(1, 3, 256, dtype=torch.bfloat16)
    with torch.no_grad():
        v = attn.v_proj(x)  # the last member first: runs the group, then lets go of it
        k = attn.k_proj(x)  # runs the group again
        w = attn.q_proj.fused.weight
        torch.testing.assert_close(v, x @ w[384:].t())
        torch.testing.assert_close(k, x @ w[256:384].t())


def test_bias_on_some_members_only():
    parent = torch.nn.Module()
    parent.a, parent.b = torch.nn.Linear(8, 4, bias=False), torch.nn.Linear(8, 2)
    x = torch.randn(2, 8)
    with torch.no_grad():
        ra, rb = parent.a(x), parent.b(x)
        fuse_projections(parent, groups=[("a", "b")])
        torch.testing.assert_close(parent.a(x), ra)
        torch.testing.assert_close(parent.b(x), rb)


def test_refusals_name_the_layer(make_llama, tmp_path):
    with pytest.raises(ValueError, match="groups"):
        fuse_projections(torch.nn.Module(), groups=[("a",)])
    parent = torch.nn.Module()
    parent.a, parent.b = torch.nn.Linear(8, 4), torch.nn.Linear(6, 4)
    with pytest.raises(ValueError, match=r"a: \['b'\] differ"):
        fuse_projections(parent, groups=[("a", "b")])
    model = make_llama()
    fuse_projections(model)
    with pytest.raises(ValueError, match=r"model.layers.0.self_attn.q_proj: already fused"):
        fuse_projections(model)
    pytest.importorskip("compressed_tensors")
    model = make_llama()
    fuse_projections(model)
    qlinear.quantize_model(model, "w8a16-ch", show_progress=False)
    with pytest.raises(ValueError, match="fused projections"):
        qlinear.save_quantized(model, str(tmp_path))
    # groups that are absent or not plain linears are left alone
    assert fuse_projections(torch.nn.Sequential(torch.nn.Linear(2, 2))) == []


def test_compiled_decode_loop_with_fused_projections():
    """The demo's decode loop (what --cuda-graph captures) through torch.compile, fused: the same
    greedy tokens as the unfused model run eagerly."""
    from qlinear.models import demo

    model = demo.build_model("tiny", torch.device("cpu"))
    ids = demo.prompt_ids(model.config.vocab_size, 5, "cpu")
    ref, _ = demo.decode_loop(model, ids, 4, graph=False, reps=1)
    fuse_projections(model)
    seq, _ = demo.decode_loop(model, ids, 4, graph=False, compile_step=True, reps=1)
    assert torch.equal(seq, ref), (seq, ref)


def test_profile_kinds_by_kernel_name():
    from qlinear.models.step_profile import format_profile, kind_of

    for name in ("nvjet_sm90_tst_64x8_64x16_4x1_v_bz_splitK_TNT", "sm90_xmma_gemm_bf16bf16_bf16f32", "gemv2T_kernel_val",
                 "mp_decode_kernel<4, 8>", "gather_cols_kernel<__nv_bfloat16>", "_scaled_mm_kernel_0d1d"):
        assert kind_of(name) == "gemm", name
    for name in ("flash_fwd_splitkv_kernel", "fmha_cutlassF_bf16_aligned_64x64_rf_sm80", "cunn_SoftMaxForward"):
        assert kind_of(name) == "attention", name
    for name in ("triton_poi_fused_add_mul_0", "triton_red_fused__to_copy_mean_pow_1", "Memcpy DtoD (Device -> Device)"):
        assert kind_of(name) == "other", name
    p = {"kinds": {"gemm": 30.0, "attention": 5.0, "other": 5.0}, "total_us": 40.0,
         "kernels": [("mp_decode_kernel", "gemm", 30.0, 4.0)]}
    text = format_profile(p, 50.0)
    assert "40 µs in kernels, step 50 µs" in text and "gemm 30 µs (75%)" in text and "mp_decode_kernel" in text


# per-channel / group schemes: joining the parts along N changes no code or scale
JOINS_EXACTLY = ("w4a16-g128", "awq-g128", "w8a16-ch", "int8-dynamic", "int8-static", "fp8-dynamic", "fp8-block",
                 "mxfp4", "w4a8")


@pytest.mark.parametrize("scheme", JOINS_EXACTLY)
def test_quantized_model_fuses_from_its_layers(scheme, make_llama, ids):
    """A model quantized layer by layer (as a GPTQ/AWQ checkpoint stores q/k/v apart) is fused from
    its layers' as-loaded parameters: the same codes and scales, so the same logits."""
    model = make_llama(layers=2)
    qlinear.quantize_model(model, scheme, calib=ids, show_progress=False)
    ref = _logits(model, ids)
    assert len(fuse_projections(model, regime="decode")) == 4
    fused = model.model.layers[1].mlp.gate_proj.fused
    assert isinstance(fused, QuantLinear) and fused.out_features == 2 * 512
    out = _logits(model, ids)
    assert ((out - ref).norm() / ref.norm()).item() < 1e-3


def test_quantized_per_tensor_fp8_parts_take_the_largest_scale(make_llama, ids):
    """Per-tensor FP8 parts with their own weight scales are requantized to the largest (vLLM's rule
    for fused modules): close to, not equal to, the unfused model."""
    model = make_llama()
    new = qlinear.quantize_model(model, "fp8-tensor", calib=ids, show_progress=False)
    parts = [new[f"model.layers.0.self_attn.{n}_proj"].checkpoint_params["weight_scale"] for n in "qkv"]
    ref = _logits(model, ids)
    fuse_projections(model)
    out = _logits(model, ids)
    assert ((out - ref).norm() / ref.norm()).item() < 0.1
    assert max(float(p) for p in parts) > min(float(p) for p in parts)  # the case is real: the scales differ


@pytest.mark.parametrize("scheme, field", [("w4a16-g128-actorder", "weight_g_idx"), ("nvfp4", "weight_global_scale")])
def test_parts_that_cannot_be_joined_are_refused_and_nothing_changes(scheme, field, make_llama, ids):
    model = make_llama()
    qlinear.quantize_model(model, scheme, calib=ids, show_progress=False)
    with pytest.raises(ValueError, match=rf"model.layers.0.self_attn.q_proj\+k_proj\+v_proj: .*{field}"):
        fuse_projections(model)
    assert isinstance(model.model.layers[0].self_attn.q_proj, QuantLinear)
    assert isinstance(model.model.layers[0].mlp.gate_proj, QuantLinear)  # its group was fine: not swapped either
    # the groups that can be joined, asked for alone
    if scheme != "nvfp4":
        return
    with pytest.raises(ValueError, match="weight_global_scale"):
        fuse_projections(model, groups=[("gate_proj", "up_proj")])


def test_quantized_parts_need_their_parameters(make_llama):
    model = make_llama()
    qlinear.quantize_model(model, "w8a16-ch", show_progress=False, keep_checkpoint=False)
    with pytest.raises(ValueError, match=r"q_proj\+k_proj\+v_proj: part 0 keeps no as-loaded parameters"):
        fuse_projections(model)
    mixed = make_llama()
    qlinear.quantize_model(mixed, "w8a16-ch", include=("k_proj",), show_progress=False)
    qlinear.quantize_model(mixed, "int8-dynamic", include=("v_proj",), show_progress=False)
    qlinear.quantize_model(mixed, "w8a16-ch", include=("q_proj",), show_progress=False)
    with pytest.raises(ValueError, match="one scheme per group"):
        fuse_projections(mixed, groups=[("q_proj", "k_proj", "v_proj")])


def test_loaded_checkpoint_fuses(make_llama, ids, tmp_path):
    """The common case: a checkpoint as stored (q/k/v apart), loaded, then fused."""
    pytest.importorskip("compressed_tensors")
    model = make_llama()
    qlinear.quantize_model(model, "awq-g128", show_progress=False)
    qlinear.save_quantized(model, str(tmp_path))
    loaded = qlinear.load_quantized(str(tmp_path), show_progress=False)
    ref = _logits(loaded, ids)
    fuse_projections(loaded)
    assert isinstance(loaded.model.layers[0].self_attn.v_proj, FusedProjection)
    out = _logits(loaded, ids)
    assert ((out - ref).norm() / ref.norm()).item() < 1e-3
