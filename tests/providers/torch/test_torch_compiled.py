"""The compiled activation-quant / epilogue path: same numbers as eager, and a safe fallback."""

import pytest
import torch

from qlinear import testing
from qlinear_torch import actquant as AQ
from qlinear_torch import compiled
from qlinear_torch.int8 import TorchCpuInt8ScaledMMLinearKernel


@pytest.fixture
def compile_on(monkeypatch):
    monkeypatch.setenv("QLINEAR_TORCH_COMPILE", "1")


def test_compiled_int8_quant_matches_eager(compile_on):
    g = torch.Generator().manual_seed(0)
    for fn in (AQ.int8_dynamic_sym, AQ.int8_dynamic_asym):
        wrapped = compiled.get(fn)
        for m in (1, 17, 40):  # CPU M <= 16 runs eager; 17 and 40 share the dynamic graph
            x = (torch.randn(m, 384, generator=g) * 3).bfloat16()
            for a, b in zip(wrapped(x), fn(x)):
                assert torch.equal(a, b)
        assert compiled.STATUS[wrapped.name] == "compiled", compiled.STATUS


def test_compiled_kernel_conformance(compile_on):
    """An INT8 layer end to end with compiled quantization and epilogue (warmed at load time)."""
    k = TorchCpuInt8ScaledMMLinearKernel
    cases = [c for c in testing.cases_for(k, ms=(1, 33)) if c.config.input_symmetric and not c.config.is_static_input_scheme
             and c.config.weight_shape == (256, 512) and c.config.input_dtype == torch.bfloat16]
    assert cases
    for case in cases:
        testing.run_case(k, case)
    assert any(n.startswith("scale_bias[dyn,sym") and v == "compiled" for n, v in compiled.STATUS.items()), compiled.STATUS


def test_compile_failure_falls_back_to_eager(compile_on, monkeypatch):
    def broken(*a, **kw):
        raise RuntimeError("no C++ compiler (simulated)")

    monkeypatch.setattr(torch, "compile", broken)
    w = compiled.MaybeCompiled(AQ.fp8_dynamic_token, "fp8_dynamic_token[test]")
    x = torch.randn(32, 256)  # above CPU_EAGER_MAX_M, so the compiled path is attempted
    q, s = w(x)
    q0, s0 = AQ.fp8_dynamic_token(x)
    assert torch.equal(q.view(torch.uint8), q0.view(torch.uint8)) and torch.equal(s, s0)
    assert compiled.STATUS["fp8_dynamic_token[test]"].startswith("eager: torch.compile failed (RuntimeError: no C++ compiler")


def test_compile_off_means_eager(monkeypatch):
    monkeypatch.setenv("QLINEAR_TORCH_COMPILE", "0")
    w = compiled.MaybeCompiled(AQ.int8_dynamic_sym, "int8_dynamic_sym[off-test]")
    w(torch.randn(64, 64))
    assert w.compiled is None and "int8_dynamic_sym[off-test]" not in compiled.STATUS


def test_small_cpu_batches_run_eager(compile_on):
    """At M <= CPU_EAGER_MAX_M eager is faster on CPU (measured), so the wrapper never compiles there."""
    w = compiled.MaybeCompiled(AQ.int8_dynamic_sym, "int8_dynamic_sym[small-test]")
    w(torch.randn(compiled.CPU_EAGER_MAX_M, 64))
    assert w.compiled is None
