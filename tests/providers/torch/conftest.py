"""The torch provider's tests run its kernels eagerly by default: torch.compile of the activation
quantization costs seconds per variant on a 2-core CI box. ``test_torch_compiled.py`` turns it on
for the cases that check the compiled path."""

import pytest


@pytest.fixture(autouse=True)
def _eager_by_default(monkeypatch):
    monkeypatch.setenv("QLINEAR_TORCH_COMPILE", "0")
