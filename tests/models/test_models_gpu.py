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


def test_cuda_fused_projections_match_separate_layers(make_llama, ids):
    """q/k/v and gate/up fused before quantizing (fuse_projections): the fused W4A16 layers hold the
    members' quantized rows, so the logits are the unfused model's up to the GEMMs' reduction order."""
    from qlinear.models.fuse import fuse_projections

    x = ids.cuda()
    plain, fused = make_llama(layers=2).cuda(), make_llama(layers=2).cuda()
    qlinear.quantize_model(plain, "w4a16-g128", show_progress=False)
    assert len(fuse_projections(fused)) == 4
    qlinear.quantize_model(fused, "w4a16-g128", show_progress=False)
    with torch.no_grad():
        a, b = plain(x).logits.float(), fused(x).logits.float()
    assert ((a - b).norm() / a.norm()).item() < 0.02


def test_cuda_quantized_model_fuses_from_its_layers(make_llama, ids):
    """A model quantized layer by layer (a checkpoint's q/k/v apart), then fused from its layers'
    parameters: the GPU's kernels on the joined layers give the unfused model's logits."""
    from qlinear.models.fuse import fuse_projections

    x = ids.cuda()
    model = make_llama(layers=2).cuda()
    qlinear.quantize_model(model, "w4a16-g128", show_progress=False, regime="decode")
    with torch.no_grad():
        a = model(x).logits.float()
    fuse_projections(model, regime="decode")
    with torch.no_grad():
        b = model(x).logits.float()
    assert ((a - b).norm() / a.norm()).item() < 0.02


def test_profile_of_a_replayed_graph_sees_its_kernels():
    """--profile's breakdown: the kernels a CUDA graph replay launches are recorded and sorted by kind."""
    from qlinear.models.step_profile import profile_steps

    a = torch.randn(256, 256, device="cuda", dtype=torch.bfloat16)
    out = torch.empty_like(a)

    def step():
        out.copy_(torch.softmax(a @ a, -1) + 1)

    step()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        step()
    p = profile_steps(g.replay, 4, torch.device("cuda"))
    assert p["kinds"]["gemm"] > 0 and p["kinds"]["attention"] > 0 and p["kinds"]["other"] > 0, p["kernels"]
    assert all(n == 1 for _, _, _, n in p["kernels"]), p["kernels"]  # one launch of each per step
