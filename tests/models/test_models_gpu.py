"""The model level on a CUDA device (marker gpu; skipped without one): the kernels a GPU picks,
inside a transformers model, against bf16 and through a save/load round trip."""

import pytest
import torch

import qlinear
from qlinear import QuantLinear

pytestmark = pytest.mark.gpu
pytest.importorskip("transformers")

# relative logit error bounds vs bf16, as in test_quantize_model (CPU measured 0.014-0.22)
CLOSE = {"w4a16-g128": 0.3, "awq-g128": 0.3, "w8a16-ch": 0.03, "int8-dynamic": 0.05, "fp8-dynamic": 0.12,
         "fp8-block": 0.12}


@pytest.mark.parametrize("scheme", sorted(CLOSE))
def test_cuda_model_close_to_bf16(scheme, make_llama, ids):
    model = make_llama().cuda()
    x = ids.cuda()
    with torch.no_grad():
        ref = model(x).logits.float()
    new = qlinear.quantize_model(model, scheme, calib=x, show_progress=False)
    kernels = {m.kernel.full_name() for m in new.values()}
    with torch.no_grad():
        out = model(x).logits.float()
    err = ((out - ref).norm() / ref.norm()).item()
    assert err < CLOSE[scheme], f"{scheme} via {kernels}: relative logit error {err:.4f}"
    gen = model.generate(x, max_new_tokens=4, min_new_tokens=4, do_sample=False, eos_token_id=None, pad_token_id=0)
    assert gen.shape[1] == x.shape[1] + 4


@pytest.mark.parametrize("scheme", ("w4a16-g128", "fp8-dynamic"))
def test_cuda_round_trip(scheme, make_llama, ids, tmp_path):
    pytest.importorskip("compressed_tensors")
    model = make_llama().cuda()
    x = ids.cuda()
    qlinear.quantize_model(model, scheme, show_progress=False)
    qlinear.save_quantized(model, str(tmp_path))
    loaded = qlinear.load_quantized(str(tmp_path), device="cuda", show_progress=False)
    assert all(p.device.type == "cuda" for p in loaded.parameters())
    assert any(isinstance(m, QuantLinear) for m in loaded.modules())
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, model(x).logits)
