"""torch.library custom op + torch.compile(fullgraph=True) for every kernel usable on this CPU: the
torch provider's, the emulation reference's, zentorch's (its CPU gate lifted by the setting), and
the triton provider's through Triton's interpreter (gate lifted, as in its own CPU tests)."""

from __future__ import annotations

import os

import pytest
import torch

from qlinear.testing import gate_lifted

from .compile_cases import build, check_compiled, check_opcheck, pairs

N, K = 128, 256
if not torch.cuda.is_available():  # as tests/providers/triton/conftest.py: before any @triton.jit import
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="CPU kernels; test_compile_gpu.py covers CUDA")


def _interpreted(cls):
    """A triton kernel class with its CUDA gate lifted (runs through the interpreter on CPU)."""
    if cls.provider != "triton":
        return cls
    return gate_lifted(cls, provider="triton")


def _cpu_pairs():
    from qlinear.settings import override_settings

    with override_settings(zentorch_any_cpu=True):
        plain = pairs("cpu", N, K, skip=lambda c: c.provider == "triton")
    triton = []
    if os.environ.get("TRITON_INTERPRET") == "1":
        triton = pairs("cpu", N, K, skip=lambda c: c.provider != "triton", wrap=_interpreted)
    return plain + triton


PAIRS = _cpu_pairs()
SLOW = ("fp8", "nvfp4", "mxfp4", "mxfp8")  # emulated FP8/FP4 math on CPU: seconds per call at larger M


@pytest.fixture(autouse=True)
def _lift_gates(fresh_registry):
    from qlinear.settings import override_settings

    with override_settings(zentorch_any_cpu=True):
        yield


@pytest.mark.parametrize("scheme,cls", PAIRS)
def test_custom_op_passes_opcheck(scheme, cls):
    q = build(scheme, cls, N, K, "cpu")
    check_opcheck(q, (1, 5), "cpu")


@pytest.mark.parametrize("scheme,cls", PAIRS)
def test_fullgraph_compile_matches_eager(scheme, cls):
    q = build(scheme, cls, N, K, "cpu")
    check_compiled(q, (1, 7), "cpu", exact=True, backend="aot_eager")


def test_inductor_fullgraph_on_a_cpu_kernel():
    torch_pairs = [p for p in PAIRS if p.values[1].full_name() == "torch.TorchCpuInt8ScaledMMLinearKernel"]
    if not torch_pairs:
        pytest.skip("torch provider not installed")
    scheme, cls = torch_pairs[0].values
    check_compiled(build(scheme, cls, N, K, "cpu"), (1, 3), "cpu", exact=True, backend="inductor")


def _emulated(scheme="w8a16-ch"):
    from qlinear.nn import QuantLinear

    return QuantLinear.from_linear(torch.nn.Linear(K, N, dtype=torch.bfloat16), scheme, kernel="EmulationMPLinearKernel")


def test_compiled_graph_holds_one_op_and_no_break():
    from torch._dynamo.testing import CompileCounterWithBackend

    q = _emulated()
    torch._dynamo.reset()
    cnt = CompileCounterWithBackend("eager")
    f = torch.compile(q, fullgraph=True, backend=cnt)
    f(torch.randn(2, K, dtype=torch.bfloat16))
    assert cnt.frame_count == 1
    targets = [str(n.target) for g in cnt.graphs for n in g.graph.nodes if n.op == "call_function"]
    assert len(targets) == 1 and targets[0].startswith("qlinear.linear"), targets


def test_bad_input_under_compile_names_the_field():
    q = _emulated()
    torch._dynamo.reset()
    f = torch.compile(q, fullgraph=True, backend="eager")
    with pytest.raises(Exception, match="x.shape"):
        f(torch.randn(2, K + 1, dtype=torch.bfloat16))


def test_eager_call_does_not_go_through_the_dispatcher(monkeypatch):
    """Eager QuantLinear calls its kernel directly (the op is for compiled graphs only)."""
    from qlinear import ops
    from qlinear.nn import QuantLinear

    q = QuantLinear.from_linear(torch.nn.Linear(K, N, dtype=torch.bfloat16), "w8a16-ch")
    monkeypatch.setattr(ops, "layer_of", lambda h: (_ for _ in ()).throw(AssertionError("op used in eager")))
    q(torch.randn(1, K, dtype=torch.bfloat16))


def test_copied_layer_gets_its_own_handle():
    import copy

    from qlinear import ops
    from qlinear.nn import QuantLinear

    q = QuantLinear.from_linear(torch.nn.Linear(K, N, dtype=torch.bfloat16), "w8a16-ch")
    c = copy.deepcopy(q)
    assert c._handle != q._handle and ops.layer_of(c._handle) is c and ops.layer_of(q._handle) is q
    x = torch.randn(2, K, dtype=torch.bfloat16)
    assert torch.equal(torch.ops.qlinear.linear(x, c.bias, c._handle), q(x))


def test_handle_of_a_dead_layer_is_a_clear_error():
    import gc

    from qlinear import ops
    from qlinear.nn import QuantLinear

    q = QuantLinear.from_linear(torch.nn.Linear(K, N, dtype=torch.bfloat16), "w8a16-ch")
    h = q._handle
    del q
    gc.collect()
    with pytest.raises(RuntimeError, match="handle"):
        ops.layer_of(h)
