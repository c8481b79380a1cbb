"""Bad or unsupported checkpoints: an error naming the tensor or config field, raised before any
tensor is read (nothing half-loaded)."""

import json
import os
import shutil

import pytest
import torch

import qlinear
from qlinear.models import CheckpointError, checkpoint

pytest.importorskip("transformers")
pytest.importorskip("compressed_tensors")
from safetensors.torch import load_file, save_file  # noqa: E402

Q = "model.layers.0.self_attn.q_proj"


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """One valid checkpoint per family used below, written once."""
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("good")
    cfg = LlamaConfig(vocab_size=256, hidden_size=256, intermediate_size=512, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=64, architectures=["LlamaForCausalLM"])
    ids = torch.randint(0, 256, (1, 8))
    out = {}
    for scheme in ("w4a16-g128", "fp8-dynamic", "awq-g128"):
        torch.manual_seed(0)
        m = LlamaForCausalLM._from_config(cfg, dtype=torch.bfloat16)
        qlinear.quantize_model(m, scheme, calib=ids, show_progress=False)
        qlinear.save_quantized(m, str(root / scheme))
        out[scheme] = root / scheme
    return out


@pytest.fixture
def no_reads(monkeypatch):
    """Fails the test if a tensor is read: every check must come from the headers first."""
    reads = []
    orig = checkpoint.Shards.get
    monkeypatch.setattr(checkpoint.Shards, "get", lambda self, key, device="cpu": reads.append(key) or orig(self, key, device))
    yield reads
    assert reads == [], f"tensors were read before the error: {reads[:3]}"


def _copy(src, tmp_path):
    dst = tmp_path / "ckpt"
    shutil.copytree(src, dst)
    return dst


def _edit_tensors(path, fn):
    f = path / "model.safetensors"
    t = load_file(str(f))
    fn(t)
    save_file(t, str(f), metadata={"format": "pt"})


def _edit_config(path, fn):
    f = path / "config.json"
    d = json.loads(f.read_text())
    fn(d["quantization_config"])
    f.write_text(json.dumps(d))


def _load(path):
    return qlinear.load_quantized(str(path), show_progress=False)


def test_missing_tensor(good, tmp_path, no_reads):
    p = _copy(good["w4a16-g128"], tmp_path)
    _edit_tensors(p, lambda t: t.pop(f"{Q}.weight_scale"))
    with pytest.raises(CheckpointError, match=rf"{Q}\.weight_scale: missing"):
        _load(p)


def test_missing_zero_point_of_asymmetric_layer(good, tmp_path, no_reads):
    p = _copy(good["awq-g128"], tmp_path)
    _edit_tensors(p, lambda t: t.pop(f"{Q}.weight_zero_point"))
    with pytest.raises(CheckpointError, match=rf"{Q}\.weight_zero_point: missing"):
        _load(p)


def test_wrong_shape(good, tmp_path, no_reads):
    p = _copy(good["w4a16-g128"], tmp_path)
    _edit_tensors(p, lambda t: t.__setitem__(f"{Q}.weight_scale", t[f"{Q}.weight_scale"][:, :1].contiguous()))
    with pytest.raises(CheckpointError, match=rf"{Q}\.weight_scale: shape \[256, 1\]: expected \[256, 2\]"):
        _load(p)


def test_wrong_dtype(good, tmp_path, no_reads):
    p = _copy(good["fp8-dynamic"], tmp_path)
    _edit_tensors(p, lambda t: t.__setitem__(f"{Q}.weight", t[f"{Q}.weight"].to(torch.bfloat16)))
    with pytest.raises(CheckpointError, match=rf"{Q}\.weight: dtype torch.bfloat16"):
        _load(p)


def test_unquantized_parameter_missing_or_misshapen(good, tmp_path, no_reads):
    p = _copy(good["w4a16-g128"], tmp_path)
    _edit_tensors(p, lambda t: t.pop("model.norm.weight"))
    with pytest.raises(CheckpointError, match=r"model\.norm\.weight: missing"):
        _load(p)
    p2 = _copy(good["w4a16-g128"], tmp_path / "2")
    _edit_tensors(p2, lambda t: t.__setitem__("model.norm.weight", torch.ones(7, dtype=torch.bfloat16)))
    with pytest.raises(CheckpointError, match=r"model\.norm\.weight: shape \[7\]"):
        _load(p2)


def test_unexpected_tensor_of_a_quantized_layer(good, tmp_path, no_reads):
    p = _copy(good["w4a16-g128"], tmp_path)
    _edit_tensors(p, lambda t: t.__setitem__(f"{Q}.weight_g_idx", torch.zeros(256, dtype=torch.int32)))
    with pytest.raises(CheckpointError, match=rf"{Q}\.weight_g_idx: present, but .*actorder"):
        _load(p)
    p2 = _copy(good["w4a16-g128"], tmp_path / "2")
    _edit_tensors(p2, lambda t: t.__setitem__(f"{Q}.weight_mystery", torch.zeros(3)))
    with pytest.raises(CheckpointError, match=rf"{Q}\.weight_mystery: unexpected tensor"):
        _load(p2)


def test_weight_shape_tensor_must_agree(good, tmp_path):
    p = _copy(good["w4a16-g128"], tmp_path)
    _edit_tensors(p, lambda t: t.__setitem__(f"{Q}.weight_shape", torch.tensor([256, 128])))
    with pytest.raises(CheckpointError, match=rf"{Q}\.weight_shape"):
        _load(p)


G = "config_groups.group_0"


@pytest.mark.parametrize("edit, field", [
    (lambda q: q["config_groups"]["group_0"].__setitem__("format", "marlin-24"), rf"{G}\.format: 'marlin-24' is not supported"),
    (lambda q: q["config_groups"]["group_0"]["weights"].__setitem__("num_bits", 3), rf"{G}\.weights\.num_bits: 3"),
    (lambda q: q["config_groups"]["group_0"]["weights"].update(strategy="tensor", group_size=None), rf"{G}\.weights\.strategy: 'tensor'"),
    (lambda q: q["config_groups"]["group_0"].__setitem__("input_activations", {"num_bits": 8, "type": "int", "strategy": "token", "dynamic": True}),
     rf"{G}\.input_activations\.type: 'int' is not supported here"),
    (lambda q: q["config_groups"]["group_0"]["weights"].__setitem__("type", "bogus"), r"quantization_config: compressed-tensors rejects it"),
    (lambda q: q.__setitem__("quant_method", "gptq"), r"quantization_config\.quant_method: 'gptq'"),
    (lambda q: q.__setitem__("quantization_status", "frozen"), r"quantization_config\.quantization_status: 'frozen'"),
    (lambda q: q.__setitem__("kv_cache_scheme", {"num_bits": 8, "type": "float", "strategy": "tensor"}), r"quantization_config\.kv_cache_scheme"),
    (lambda q: q.__setitem__("config_groups", {}), r"quantization_config\.config_groups: missing or empty"),
], ids=["format", "num_bits", "strategy", "w4a8-int-acts", "pydantic", "quant_method", "status", "kv_cache", "no_groups"])
def test_bad_config_field(edit, field, good, tmp_path, no_reads):
    p = _copy(good["w4a16-g128"], tmp_path)
    _edit_config(p, edit)
    with pytest.raises(CheckpointError, match=field):
        _load(p)


def test_weight_only_nvfp4_is_refused_by_name(good, tmp_path, no_reads):
    p = _copy(good["fp8-dynamic"], tmp_path)

    def nvfp4a16(q):
        g = q["config_groups"]["group_0"]
        g.update(format="nvfp4-pack-quantized", input_activations=None)
        g["weights"].update(num_bits=4, strategy="tensor_group", group_size=16)
    _edit_config(p, nvfp4a16)
    with pytest.raises(CheckpointError, match=rf"{G}\.input_activations: missing: NVFP4A16"):
        _load(p)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        _load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(CheckpointError, match="no quantization_config"):
        _load(tmp_path)


def test_no_shards(good, tmp_path):
    p = _copy(good["w4a16-g128"], tmp_path)
    os.remove(p / "model.safetensors")
    with pytest.raises(CheckpointError, match="no \\*.safetensors shards"):
        _load(p)


def test_bad_regime_is_refused_before_reading(tmp_path):
    from qlinear.models.checkpoint import load_quantized

    with pytest.raises(ValueError, match="regime: 'fast'"):
        load_quantized(str(tmp_path / "nowhere"), regime="fast")
