"""The cutlass provider's torch bindings (host code, one per extension) pass the C++ front end against this torch's
headers, on a machine without a GPU: a signature change between a binding and its launchers is
caught in CI. Needs no CUTLASS headers (the bindings include only the provider's own API headers)."""

from pathlib import Path

import pytest

from qlinear.testing import check_torch_binding_syntax

CSRC = Path(__file__).resolve().parents[3] / "providers" / "cutlass" / "qlinear_cutlass" / "csrc"


@pytest.mark.parametrize("source", ["binding.cpp", "w4a16_binding.cpp", "w8a16_binding.cpp", "w4a8_binding.cpp", "nvfp4_binding.cpp"])
def test_torch_binding_compiles(source, tmp_path):
    r = check_torch_binding_syntax(CSRC / source, tmp_path)
    if r is None:
        pytest.skip("no host C++ compiler, or torch's c10/cuda headers or CUDA's headers are not here")
    assert r.returncode == 0, f"{source}:\n{r.stderr[-4000:]}"
