import pytest

import qlinear


@pytest.fixture
def any_cpu():
    """Let the zentorch gate accept a non-Zen x86 CPU (a no-op on a Zen CPU), and skip where this CPU
    cannot run zentorch's kernels at all (no AVX-512: on an AVX2-only Zen 3 they crash or return garbage)."""
    from qlinear.platform import resolve_platform
    from qlinear_zentorch import gate

    with qlinear.override_settings(zentorch_any_cpu=True) as s:
        ok, why = gate.check_platform(resolve_platform(None))
        if not ok:
            pytest.skip(f"zentorch's kernels do not run on this CPU: {why}")
        yield s
