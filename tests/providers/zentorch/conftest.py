import pytest

import qlinear


@pytest.fixture
def any_cpu():
    """This CI machine is an Intel Xeon: let the zentorch gate accept it (a no-op on a Zen CPU)."""
    with qlinear.override_settings(zentorch_any_cpu=True) as s:
        yield s
