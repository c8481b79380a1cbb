"""GPU: for every kernel of every provider usable on this card, on a Llama-sized layer, the
``qlinear::linear`` custom op passes opcheck, torch.compile(fullgraph=True) (inductor, dynamic M)
matches eager, and a CUDA graph captures the layer's first call (nothing lazy in the call path)."""

from __future__ import annotations

import pytest
import torch

from .compile_cases import build, check_compiled, check_opcheck, pairs

pytestmark = pytest.mark.gpu
N, K = 4096, 4096
PAIRS = pairs("cuda", N, K, skip=lambda c: c.provider == "emulation") if torch.cuda.is_available() else []


@pytest.fixture(autouse=True)
def _fresh(fresh_registry):
    yield


@pytest.mark.parametrize("scheme,cls", PAIRS)
def test_custom_op_passes_opcheck_gpu(scheme, cls):
    q = build(scheme, cls, N, K, "cuda")
    check_opcheck(q, (1, 16), "cuda")


@pytest.mark.parametrize("scheme,cls", PAIRS)
def test_fullgraph_compile_matches_eager_gpu(scheme, cls):
    q = build(scheme, cls, N, K, "cuda")
    check_compiled(q, (1, 4, 16, 64, 300), "cuda", exact=False)


@pytest.mark.parametrize("scheme,cls", PAIRS)
def test_cuda_graph_captures_the_first_call(scheme, cls):
    """The layer is built (weights re-laid, JIT done), then its very first call is inside a capture:
    anything lazy on the call path (a JIT build, a workspace allocation, a table look-up, a host
    sync) fails here."""
    q = build(scheme, cls, N, K, "cuda")
    x = torch.randn(4, K, dtype=torch.bfloat16, device="cuda")
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        y = q(x)
    g.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(y, q(x), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("m", (1, 4))
@pytest.mark.parametrize("scheme,cls", PAIRS)
def test_reduce_overhead_compile_after_eager_calls(scheme, cls, m):
    """torch.compile(mode="reduce-overhead") (CUDA-graph trees, what transformers' static KV cache
    uses) after eager calls. The trees' warm-up call routes every allocation of its thread into the
    graph pool: scratch a kernel keeps between calls (split-K counters, workspaces), made then for the
    trees' stream, must not land there (it did: "tensor(s) in the cudagraph pool not tracked as
    outputs", one per layer at M = 1). M = 1 takes the split-K GEMV paths."""
    from torch._inductor import cudagraph_trees

    torch._dynamo.reset()
    cudagraph_trees.reset_cudagraph_trees()  # a tree (and its pool) of this test only
    q = build(scheme, cls, N, K, "cuda")
    x = torch.randn(1, m, K, dtype=torch.bfloat16, device="cuda")  # [batch, tokens, K], as a model calls it
    ref = q(x)
    f = torch.compile(q, mode="reduce-overhead", fullgraph=True)
    # on failure the error names where each stray pool tensor was allocated
    with torch._inductor.config.patch({"triton.cudagraph_trees_history_recording": True}):
        for _ in range(3):  # warm-up, record, replay
            y = f(x)
    torch.cuda.synchronize()
    torch.testing.assert_close(y.clone(), ref, rtol=1e-2, atol=1e-2)
