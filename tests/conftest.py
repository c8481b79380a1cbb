import pytest
import torch


def pytest_collection_modifyitems(config, items):
    """GPU-marked tests skip cleanly (with a reason) where there is no CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (marker gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def fresh_registry():
    """A registry re-read from the installed entry points, forgotten again after the test."""
    from qlinear import registry

    registry.reset_registry()
    yield registry.get_registry()
    registry.reset_registry()
