"""quantize -> save_quantized -> load_quantized gives back the same layers bit for bit, per scheme."""

import json
import os

import pytest
import torch

import qlinear
from qlinear import QuantLinear

pytest.importorskip("transformers")
pytest.importorskip("compressed_tensors")
from safetensors import safe_open  # noqa: E402  (comes with transformers)

SCHEMES = ("w4a16-g128", "w4a16-g64", "w4a16-ch", "w4a16-g128-actorder", "w8a16-g128", "w8a16-ch", "awq-g128",
           "awq-g64", "int8-dynamic", "int8-dynamic-asym", "int8-static", "int8-static-asym", "fp8-tensor",
           "fp8-dynamic", "fp8-block", "nvfp4", "mxfp4", "mxfp8", "w4a8", "w4a8-ch")


def _tensors(path):
    out = {}
    for f in sorted(os.listdir(path)):
        if f.endswith(".safetensors"):
            with safe_open(os.path.join(path, f), "pt") as h:
                out.update({k: h.get_tensor(k) for k in h.keys()})
    return out


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-identical values (a single value may be [1] on one side and 0-dim on the other)."""
    if a.numel() == 1 and b.numel() == 1:
        a, b = a.reshape(1), b.reshape(1)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.is_floating_point and a.element_size() in (1, 2, 4, 8):
        view = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
        return torch.equal(a.contiguous().view(view), b.contiguous().view(view))
    return torch.equal(a, b)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_round_trip(scheme, llama, ids, tmp_path):
    qlinear.quantize_model(llama, scheme, calib=ids, show_progress=False)
    with torch.no_grad():
        want = llama(ids).logits
    qlinear.save_quantized(llama, str(tmp_path / "a"))
    loaded = qlinear.load_quantized(str(tmp_path / "a"), show_progress=False)

    mine = {n: m for n, m in llama.named_modules() if isinstance(m, QuantLinear)}
    theirs = {n: m for n, m in loaded.named_modules() if isinstance(m, QuantLinear)}
    assert sorted(mine) == sorted(theirs) and len(mine) == 7
    for name, m in mine.items():
        t = theirs[name]
        assert t.config == m.config, name
        assert t.kernel.full_name() == m.kernel.full_name(), name
        for pname, p in m.checkpoint_params.items():
            assert _same(t.checkpoint_params[pname], p), f"{name}.{pname} differs after the round trip"
        assert sorted(t.checkpoint_params) == sorted(m.checkpoint_params), name
    for (n1, p1), (n2, p2) in zip(llama.named_parameters(), loaded.named_parameters()):
        if ".self_attn." in n1 or ".mlp." in n1:
            continue
        assert n1 == n2 and _same(p1.detach(), p2.detach()), n1
    with torch.no_grad():
        got = loaded(ids).logits
    assert torch.equal(got, want)

    # saving the loaded model writes the same tensors again
    qlinear.save_quantized(loaded, str(tmp_path / "b"))
    a, b = _tensors(tmp_path / "a"), _tensors(tmp_path / "b")
    assert sorted(a) == sorted(b)
    for k in a:
        assert _same(a[k], b[k]), k
    qa = json.loads((tmp_path / "a" / "config.json").read_text())["quantization_config"]
    qb = json.loads((tmp_path / "b" / "config.json").read_text())["quantization_config"]
    assert qa == qb


def test_w4a8_checkpoint_without_channel_scales(llama, ids, tmp_path):
    """vLLM's W4AFP8 layout: 16-bit group scales and no ``weight_chan_scale``. The loader gives the
    layers ones, the group scales are used as their E4M3 values, and the model runs."""
    from safetensors.torch import load_file, save_file

    qlinear.quantize_model(llama, "w4a8", show_progress=False)
    qlinear.save_quantized(llama, str(tmp_path))
    f = tmp_path / "model.safetensors"
    t = load_file(str(f))
    for k in [k for k in t if k.endswith(".weight_chan_scale")]:
        del t[k]
    for k in [k for k in t if k.endswith(".weight_scale")]:
        t[k] = t[k].to(torch.bfloat16)  # E4M3 values are exact in bf16
    save_file(t, str(f), metadata={"format": "pt"})
    loaded = qlinear.load_quantized(str(tmp_path), show_progress=False)
    layers = [m for m in loaded.modules() if isinstance(m, QuantLinear)]
    assert len(layers) == 7
    for m in layers:
        assert torch.equal(m.checkpoint_params["weight_chan_scale"], torch.ones(m.config.weight_shape[0], 1))
    with torch.no_grad():
        assert torch.isfinite(loaded(ids).logits).all()


def test_sharded_save_and_lazy_per_tensor_reads(llama, ids, tmp_path, monkeypatch):
    from qlinear.models import checkpoint

    qlinear.quantize_model(llama, "w4a16-g128", show_progress=False)
    qlinear.save_quantized(llama, str(tmp_path), max_shard_size="100KB")
    files = sorted(f for f in os.listdir(tmp_path) if f.endswith(".safetensors"))
    assert len(files) > 3 and (tmp_path / "model.safetensors.index.json").exists()
    reads = []
    orig = checkpoint.Shards.get
    monkeypatch.setattr(checkpoint.Shards, "get", lambda self, key, device="cpu": reads.append(key) or orig(self, key, device))
    loaded = qlinear.load_quantized(str(tmp_path), show_progress=False)
    assert len(reads) == len(set(reads)) == len(_tensors(tmp_path))  # every tensor read once, one at a time
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, llama(ids).logits)


def test_mixed_schemes_in_one_checkpoint(llama, ids, tmp_path):
    qlinear.quantize_model(llama, "w4a16-g128", include=["*.self_attn.*"], show_progress=False)
    qlinear.quantize_model(llama, "fp8-dynamic", include=["*.mlp.*"], show_progress=False)
    qlinear.save_quantized(llama, str(tmp_path))
    qc = json.loads((tmp_path / "config.json").read_text())["quantization_config"]
    assert qc["format"] == "mixed-precision" and len(qc["config_groups"]) == 2
    loaded = qlinear.load_quantized(str(tmp_path), show_progress=False)
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, llama(ids).logits)


def test_save_needs_the_as_quantized_parameters(llama, tmp_path):
    qlinear.quantize_model(llama, "w8a16-ch", keep_checkpoint=False, show_progress=False)
    with pytest.raises(ValueError, match=r"model\.layers\.0\.self_attn\.q_proj: keeps no as-quantized"):
        qlinear.save_quantized(llama, str(tmp_path))
    with pytest.raises(ValueError, match="no QuantLinear"):
        qlinear.save_quantized(torch.nn.Linear(4, 4), str(tmp_path))


def test_dtype_and_device_arguments(llama, ids, tmp_path):
    qlinear.quantize_model(llama, "w8a16-ch", show_progress=False)
    qlinear.save_quantized(llama, str(tmp_path))
    loaded = qlinear.load_quantized(str(tmp_path), device="cpu", dtype=torch.float16, show_progress=False)
    assert loaded.model.embed_tokens.weight.dtype == torch.float16
    assert loaded.model.layers[0].mlp.up_proj.config.act_type == torch.float16
    with torch.no_grad():
        out = loaded(ids).logits
    assert torch.isfinite(out).all()
