"""Shared by test_compile.py (CPU) and test_compile_gpu.py: every (scheme, usable kernel) pair on a
device, a QuantLinear forced onto that kernel, and the custom-op / torch.compile checks."""

from __future__ import annotations

import pytest
import torch

# one scheme per family and variant the kernels gate on (act-order, zero points, asymmetric, static)
SCHEMES = ("w4a16-g128", "awq-g128", "w4a16-g128-actorder", "w8a16-ch", "int8-dynamic", "int8-dynamic-asym",
           "int8-static", "fp8-tensor", "fp8-dynamic", "fp8-block", "nvfp4", "mxfp4", "mxfp8")


def pairs(device: str, n: int, k: int, skip=lambda cls: False, wrap=lambda cls: cls) -> list:
    """pytest params (scheme, kernel class) for every kernel usable here for each scheme."""
    import qlinear
    from qlinear.nn import scheme_config
    from qlinear.registry import reset_registry
    from qlinear.selection import select

    reset_registry()
    plat = qlinear.platform.current_platform()
    if torch.device(device).type != plat.device_type:
        return []
    out = []
    for scheme in SCHEMES:
        config = scheme_config(scheme, n, k)
        kernels = [wrap(c) for c in qlinear.get_registry().kernels(config.family) if not skip(c)]
        sel = select(config, plat, kernels=kernels, raise_on_failure=False, evaluate_all=True)
        out += [pytest.param(scheme, cls, id=f"{scheme}-{cls.full_name()}") for cls in sel.viable]
    reset_registry()
    return out


def build(scheme: str, cls, n: int, k: int, device: str):
    """A QuantLinear on ``cls`` (registered for the duration, so a test-only subclass can be forced)."""
    import qlinear
    from qlinear.nn import QuantLinear

    torch.manual_seed(0)
    qlinear.register_linear_kernel(cls, None, cls.family)
    lin = torch.nn.Linear(k, n, dtype=torch.bfloat16, device=device)
    calib = torch.randn(16, k, dtype=torch.bfloat16, device=device)
    q = QuantLinear.from_linear(lin, scheme, calib_x=calib, kernel=cls)
    assert type(q.kernel) is cls
    return q


def check_opcheck(q, ms, device):
    for m in ms:
        x = torch.randn(m, q.in_features, dtype=torch.bfloat16, device=device)
        torch.library.opcheck(torch.ops.qlinear.linear.default, (x, q.bias, q._handle))


def check_compiled(q, ms, device, exact: bool, backend: str = "inductor"):
    """fullgraph compile (dynamic M), then compiled == eager for every M (and a 3-D x)."""
    torch._dynamo.reset()
    f = torch.compile(q, fullgraph=True, dynamic=True, backend=backend)
    xs = [torch.randn(m, q.in_features, dtype=torch.bfloat16, device=device) for m in ms]
    xs.append(torch.randn(2, 3, q.in_features, dtype=torch.bfloat16, device=device))
    for x in xs:
        got, want = f(x), q(x)
        assert got.shape == want.shape and got.dtype == want.dtype
        if exact:
            assert torch.equal(got, want), tuple(x.shape)
        else:
            torch.testing.assert_close(got, want, rtol=1e-2, atol=1e-2)
