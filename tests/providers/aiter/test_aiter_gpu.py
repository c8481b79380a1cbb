"""On a ROCm machine with aiter (MI300 / MI355): every aiter kernel against the reference through the
conformance kit. Skips (with the gate's reason) everywhere else; never run by this project so far."""

import pytest

from qlinear import testing

from qlinear_aiter import kernels

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("kernel", kernels(), ids=lambda k: k.__name__)
def test_conformance_on_rocm(kernel):
    ok, why = kernel.is_supported()
    if not ok:
        pytest.skip(why)
    testing.check_kernel(kernel, device="cuda", cases=testing.cases_for(kernel, ms=(1, 7, 33, 128)))
