"""Every aiter kernel's plumbing (weight re-layout, the FP8 flavour of the arch, scale shapes,
activation quantization, bias) through the conformance kit on CPU, against the stand-ins of
conftest.py, under simulated MI300 (e4m3fnuz) and MI355 (e4m3fn). This checks OUR side of each
call; the GEMMs themselves are unverified (no ROCm GPU here)."""

import pytest

import qlinear
from qlinear import testing

import qlinear_aiter.fp8 as fp8_mod
from qlinear_aiter import library
from qlinear_aiter.fp8 import AiterFp8CKLinearKernel, AiterFp8HipblasltLinearKernel, AiterFp8PreshuffledLinearKernel
from qlinear_aiter.fp8_block import AiterFp8BlockScaledLinearKernel
from qlinear_aiter.int8 import AiterInt8ScaledMMLinearKernel
from qlinear_aiter.mxfp4 import AiterMxFp4LinearKernel

KERNELS = [AiterInt8ScaledMMLinearKernel, AiterFp8CKLinearKernel, AiterFp8PreshuffledLinearKernel,
           AiterFp8HipblasltLinearKernel, AiterFp8BlockScaledLinearKernel, AiterMxFp4LinearKernel]
ENTRY = {AiterInt8ScaledMMLinearKernel: "gemm_a8w8_CK", AiterFp8CKLinearKernel: "gemm_a8w8_CK",
         AiterFp8PreshuffledLinearKernel: "gemm_a8w8_bpreshuffle", AiterFp8HipblasltLinearKernel: "hipb_mm",
         AiterFp8BlockScaledLinearKernel: "gemm_a8w8_blockscale", AiterMxFp4LinearKernel: "gemm_afp4wfp4"}


@pytest.mark.parametrize("preset,arch", [("mi300", "gfx942"), ("mi355", "gfx950")])
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.__name__)
def test_plumbing_through_the_conformance_kit(kernel, preset, arch, imports):
    if kernel is AiterMxFp4LinearKernel and arch != "gfx950":
        pytest.skip("MXFP4 is gfx950-only (gated; see test_aiter_gating)")
    imports["mode"], imports["arch"] = "present", arch
    with qlinear.simulate_platform(preset):
        results = testing.check_kernel(kernel, cases=testing.cases_for(kernel, ms=(1, 5)))
    assert sum(r.ran for r in results) >= 2
    assert ENTRY[kernel] in imports["op_calls"]


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.__name__)
def test_bad_inputs_name_the_field(kernel, imports):
    imports["mode"], imports["arch"] = "present", "gfx950"
    with qlinear.simulate_platform("mi355"):
        testing.check_bad_inputs(kernel)


def test_the_kit_has_teeth_for_the_shuffle(imports, monkeypatch):
    """With the weight left unshuffled the pre-shuffled kernel's results are wrong, and the kit says so."""
    imports["mode"], imports["arch"] = "present", "gfx950"
    monkeypatch.setattr(fp8_mod, "shuffle_weight", lambda w: w)
    with qlinear.simulate_platform("mi355"), pytest.raises(AssertionError):
        testing.check_kernel(AiterFp8PreshuffledLinearKernel, cases=testing.cases_for(AiterFp8PreshuffledLinearKernel, ms=(5,)))


def test_the_kit_has_teeth_for_the_fnuz_scale(imports, monkeypatch):
    """Keeping the e4m3fn scale on MI300's fnuz bytes halves every output: caught."""
    import qlinear_aiter.layouts as L

    imports["mode"], imports["arch"] = "present", "gfx942"
    monkeypatch.setattr(L, "e4m3fn_to_fnuz", lambda w, s: (w.view(L.FNUZ), s.float()))
    with qlinear.simulate_platform("mi300"), pytest.raises(AssertionError):
        testing.check_kernel(AiterFp8CKLinearKernel, cases=testing.cases_for(AiterFp8CKLinearKernel, ms=(5,)))


def test_hipblaslt_extension_created_once(imports):
    imports["mode"], imports["arch"] = "present", "gfx950"
    with qlinear.simulate_platform("mi355"):
        testing.check_kernel(AiterFp8HipblasltLinearKernel, cases=testing.cases_for(AiterFp8HipblasltLinearKernel, ms=(1, 5)))
    assert imports["op_calls"].count("hipb_create_extension") == 1 and imports["op_calls"].count("hipb_mm") >= 2


def test_our_calls_match_aiters_signatures():
    """The parameters we pass positionally, against the source of an installed amd-aiter (parsed, not
    imported: importing aiter needs ROCm)."""
    import ast
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution("amd-aiter")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("amd-aiter is not installed")
    files = {str(f).replace("\\", "/"): f for f in dist.files or []}
    for name, (path, params) in library.SIGNATURES.items():
        assert path in files, f"amd-aiter {dist.version} has no {path}"
        tree = ast.parse(dist.locate_file(files[path]).read_text())
        defs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name]
        assert defs, f"{path} defines no {name}"
        got = tuple(a.arg for a in defs[0].args.args)[: len(params)]
        assert got == params, f"aiter.{name}{got} != what qlinear_aiter passes {params}"
