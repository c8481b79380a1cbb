"""Conformance of the cpu provider's AMX kernels, run for real where the CPU has AMX."""

import pytest
import torch

pytest.importorskip("qlinear_cpu")

from qlinear import testing  # noqa: E402
from qlinear_cpu import caps  # noqa: E402
from qlinear_cpu.kernels import KERNELS as ALL_KERNELS  # noqa: E402
from qlinear_cpu.w4a8 import CpuAmxW4A8LinearKernel  # noqa: E402

pytestmark = pytest.mark.skipif(not caps.gate()[0], reason=f"{caps.gate()[1]}")

MS = (1, 3, 8, 33, 128)
# the opt-in W4A8 kernel has its own module (test_cpu_w4a8.py: its own tolerance, the switch on)
KERNELS = [k for k in ALL_KERNELS if k is not CpuAmxW4A8LinearKernel]


def _cases():
    out = []
    for k in KERNELS:
        for case in testing.cases_for(k, ms=MS):
            if k.can_implement(case.config)[0]:
                out.append(pytest.param(k, case, id=f"{k.__name__}-{case}"))
    return out


@pytest.mark.parametrize("kernel,case", _cases())
def test_conformance(kernel, case):
    assert testing.run_case(kernel, case, device="cpu").ran


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.__name__)
def test_bad_inputs(kernel):
    testing.check_bad_inputs(kernel, device="cpu")
