"""quantize_model on a tiny Llama (transformers, random weights) and on plain nn.Modules."""

import sys

import pytest
import torch

import qlinear
from qlinear import QuantLinear

pytest.importorskip("transformers")

# relative logit error of the quantized model vs the bf16 model on the same input, per scheme:
# ||logits_q - logits_bf16|| / ||logits_bf16||. Bounds are ~2-3x what these seeded models measure,
# loose enough for kernel differences, tight enough that a wrong scale/layout (error ~1) fails.
CLOSE = {"w8a16-ch": 0.03, "int8-dynamic": 0.05, "fp8-dynamic": 0.12, "w4a16-g128": 0.3, "awq-g128": 0.3,
         "int8-static": 0.1, "fp8-block": 0.12, "nvfp4": 0.4, "mxfp8": 0.15, "w4a8": 0.3}


def _rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


@pytest.mark.parametrize("scheme", sorted(CLOSE))
def test_tiny_llama_logits_close_to_bf16(scheme, llama, ids):
    with torch.no_grad():
        ref = llama(ids).logits
    new = qlinear.quantize_model(llama, scheme, calib=ids, show_progress=False)
    assert len(new) == 7  # q k v o gate up down of the one decoder layer; lm_head skipped
    assert all(isinstance(m, QuantLinear) for m in new.values())
    assert type(llama.lm_head) is torch.nn.Linear
    with torch.no_grad():
        out = llama(ids).logits
    assert torch.isfinite(out).all()
    err = _rel(out, ref)
    assert err < CLOSE[scheme], f"{scheme}: relative logit error {err:.4f} >= {CLOSE[scheme]}"
    assert err > 0  # it really runs quantized weights


def test_generation_through_quantlinear(llama, ids):
    """Greedy generation runs through the QuantLinear layers (KV cache included)."""
    qlinear.quantize_model(llama, "w8a16-ch", show_progress=False)
    out = llama.generate(ids, max_new_tokens=4, min_new_tokens=4, do_sample=False, eos_token_id=None, pad_token_id=0)
    assert out.shape == (1, ids.shape[1] + 4)


def test_include_and_skip_patterns(llama):
    new = qlinear.quantize_model(llama, "w8a16-ch", include=["*.mlp.*"], skip=["down_proj"], show_progress=False)
    assert sorted(n.rsplit(".", 1)[1] for n in new) == ["gate_proj", "up_proj"]
    assert type(llama.model.layers[0].self_attn.q_proj) is torch.nn.Linear
    assert type(llama.model.layers[0].mlp.down_proj) is torch.nn.Linear
    new = qlinear.quantize_model(llama, "w8a16-ch", include=["re:self_attn\\.(q|k)_proj$"], show_progress=False)
    assert sorted(n.rsplit(".", 1)[1] for n in new) == ["k_proj", "q_proj"]


def _snapshot(model):
    return {n: (type(m), m.weight.data_ptr() if hasattr(m, "weight") else None) for n, m in model.named_modules()}


def test_static_scheme_without_calib_leaves_model_untouched(llama):
    before = _snapshot(llama)
    with pytest.raises(ValueError, match="calib"):
        qlinear.quantize_model(llama, "fp8-tensor", show_progress=False)
    assert _snapshot(llama) == before


def test_layer_the_scheme_cannot_take_is_named_and_nothing_changes(make_llama):
    model = make_llama(hidden=192, inter=384)  # K=192 is not a multiple of 128
    before = _snapshot(model)
    with pytest.raises(ValueError, match=r"model\.layers\.0\.self_attn\.q_proj.*group_size"):
        qlinear.quantize_model(model, "w4a16-g128", show_progress=False)
    assert _snapshot(model) == before


def test_unknown_scheme_and_nothing_to_quantize(llama):
    with pytest.raises(ValueError, match="scheme"):
        qlinear.quantize_model(llama, "int3-magic", show_progress=False)
    with pytest.raises(ValueError, match="include/skip"):
        qlinear.quantize_model(llama, "w8a16-ch", include=["nothing.matches"], show_progress=False)


def test_any_module_and_shared_linear():
    torch.manual_seed(0)
    shared = torch.nn.Linear(64, 64).bfloat16()
    model = torch.nn.Sequential(shared, torch.nn.ReLU(), shared, torch.nn.Linear(64, 32).bfloat16())
    x = torch.randn(3, 64, dtype=torch.bfloat16)
    ref = model(x)
    new = qlinear.quantize_model(model, "w8a16-ch", skip=(), show_progress=False)
    assert len(new) == 2 and model[0] is model[2] and isinstance(model[0], QuantLinear)
    assert model[0].bias is not None
    assert _rel(model(x), ref) < 0.03


def test_progress_without_tqdm(monkeypatch, capsys, llama):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    qlinear.quantize_model(llama, "w8a16-ch", show_progress=True)
    assert "quantize w8a16-ch: 7/7" in capsys.readouterr().err


def test_calib_forms(llama, ids):
    """Input ids, a dict of keyword inputs, a list, or a callable: the same statistics."""
    import copy

    scales = []
    for calib in (ids, {"input_ids": ids}, [ids], lambda m: m(ids)):
        m = copy.deepcopy(llama)
        new = qlinear.quantize_model(m, "int8-static", calib=calib, show_progress=False)
        scales.append(torch.stack([l.checkpoint_params["input_scale"] for l in new.values()]))
    for s in scales[1:]:
        assert torch.equal(s, scales[0])
    with pytest.raises(TypeError, match="calib"):
        qlinear.quantize_model(copy.deepcopy(llama), "int8-static", calib=3.5, show_progress=False)


def test_regime_reaches_every_layer(llama, monkeypatch):
    """quantize_model(regime=...) chooses each layer's kernel for that M range (token generation:
    "decode"); a bad regime is refused by name before anything changes."""
    import qlinear.nn as qnn

    seen = []
    real = qnn.select

    def recording(config, *a, **kw):
        seen.append(kw.get("regime"))
        return real(config, *a, **kw)

    monkeypatch.setattr(qnn, "select", recording)
    new = qlinear.quantize_model(llama, "w8a16-ch", regime="decode", show_progress=False)
    assert seen and len(seen) == len(new) and set(seen) == {"decode"}
    before = _snapshot(llama)
    with pytest.raises(ValueError, match="regime"):
        qlinear.quantize_model(llama, "w8a16-ch", regime="sometimes", show_progress=False)
    assert _snapshot(llama) == before
