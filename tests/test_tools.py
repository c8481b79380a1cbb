"""tools/harness.py: the tuning tools' timing is qlinear.timing's, and it runs on CPU."""

import pathlib
import time

import pytest
import torch

ROOT = pathlib.Path(__file__).parents[1]


@pytest.fixture
def harness(monkeypatch):
    import importlib

    monkeypatch.syspath_prepend(str(ROOT))  # tools/ is a checkout directory, not an installed package
    return importlib.import_module("tools.harness")


def test_timer_modes(harness):
    calls = []
    once = harness.Timer("cpu", mode="once")
    assert once(lambda i: calls.append(i), copies=5) == 0.0 and calls == [0]  # one call, nothing timed
    timed = harness.Timer("cpu", max_time=0.01)
    calls.clear()
    us = timed(lambda i: (calls.append(i), time.sleep(1e-4)), copies=3)
    assert us >= 100 and set(calls) == {0, 1, 2}  # medians of real calls, rotating over the copies
    slowest_first = harness.Timer("cpu", max_time=0.01, stat="min", clock=time.thread_time)
    assert slowest_first(lambda i: sum(range(1000)), copies=2) >= 0
    with pytest.raises(ValueError, match="mode"):
        harness.Timer("cpu", mode="sometimes")


def test_rotation_and_layers(harness):
    from qlinear.nn import scheme_config
    from qlinear_emulation.kernels import EmulationInt8ScaledMMLinearKernel

    assert harness.copies_for(16 << 20, "cpu") == 6 and harness.copies_for(1 << 30, "cpu") == 6
    assert harness.copies_for(1 << 20, "cpu", max_copies=64) == 64
    c = scheme_config("int8-dynamic", 64, 128)
    params, layers, kernels = harness.make_layers(EmulationInt8ScaledMMLinearKernel, c, torch.randn(64, 128), 3)
    assert len(layers) == len(kernels) == 3 and layers[0].weight.data_ptr() != layers[1].weight.data_ptr()
    x = torch.randn(2, 128, dtype=torch.bfloat16)
    assert harness.rel_error(kernels[1].apply(layers[1], x), kernels[0].apply(layers[0], x)) == 0.0


def test_gptq_g128_shapes_share_one_weight_across_kernels(harness):
    """What the decode sweeps run on: every kernel's layers re-laid from the same quantized weight, the
    dequantized reference and bf16 copies of the float weight, per shape."""
    from qlinear_emulation.kernels import EmulationMPLinearKernel

    got = list(harness.gptq_g128_shapes((EmulationMPLinearKernel, None), "cpu", {"a": (64, 256), "b": (128, 128)}))
    assert [(name, n, k) for name, n, k, *_ in got] == [("a", 64, 256), ("b", 128, 128)]
    name, n, k, copies, made, ref_w, bf = got[0]
    layers, kernels = made[EmulationMPLinearKernel]
    assert list(made) == [EmulationMPLinearKernel] and len(layers) == copies > 1 and len(bf) > 1
    x = torch.randn(3, k, dtype=torch.bfloat16)
    ref = (x.double() @ ref_w.t()).float()
    assert harness.rel_error(kernels[0].apply(layers[0], x), ref) < 1e-2  # the layers hold the reference's weight
    assert harness.rel_error(x.float() @ bf[0].float().t(), ref) < 0.2  # and bf16 the float weight it was quantized from


def test_tools_use_no_path_hacks_or_private_tile_attributes():
    for path in (ROOT / "tools").glob("*.py"):
        text = path.read_text()
        assert "sys.path" not in text, path.name
        for private in ("._tile", "._tiles", "._kernel", "global "):
            assert private not in text, f"{path.name} uses {private!r}: use the kernels' public tuning hooks"


def test_wall_us_times_back_to_back_calls():
    """qlinear.timing.wall_us: warmup calls, then reps x calls timed, per call; median or min."""
    from qlinear.timing import wall_us

    calls = []
    us = wall_us(lambda: (calls.append(1), time.sleep(2e-4)), "cpu", calls=4, reps=3, warmup=2)
    assert len(calls) == 2 + 4 * 3 and us >= 200
    sleeps = [5e-3, 5e-3, 0.0]  # two slow reps, one fast: the median is slow, the minimum fast
    slow = iter(sleeps)
    assert wall_us(lambda: time.sleep(next(slow)), "cpu", reps=3, warmup=0) >= 5000
    slow = iter(sleeps)
    assert wall_us(lambda: time.sleep(next(slow)), "cpu", reps=3, warmup=0, stat="min") < 2500
    with pytest.raises(ValueError, match="stat"):
        wall_us(lambda: None, "cpu", stat="mean")


@pytest.mark.gpu
def test_graph_us_replays_the_captured_calls():
    """qlinear.timing.graph_us: warm on a side stream, capture `calls` steps once, replay `reps` times."""
    from qlinear.timing import graph_us

    t = torch.zeros((), device="cuda")
    seen = []
    us = graph_us(lambda j: (seen.append(j), t.add_(1)), "cuda", calls=4, reps=5)
    torch.cuda.synchronize()
    assert seen == [0, 1, 2, 3] * 2  # warmup, then the capture (records, runs nothing)
    assert int(t) == 4 + 4 + 4 * 5 and us > 0  # warmup, the replay after capture, then reps replays


def test_cutlass_w4a8_bench_smoke_on_cpu(monkeypatch, tmp_path, capsys):
    """The W4A8 bench script runs end to end on CPU (--smoke: no timing, the cutlass layers left out
    with their reason) and writes its JSON."""
    import importlib
    import json
    import sys

    pytest.importorskip("qlinear_cutlass")
    monkeypatch.syspath_prepend(str(ROOT))
    bench = importlib.import_module("tools.cutlass_w4a8_bench")
    out = tmp_path / "b.json"
    monkeypatch.setattr(sys, "argv", ["x", "--smoke", "--shapes", "256x512", "--m", "1,16", "--out", str(out)])
    bench.main()
    rep = json.loads(out.read_text())
    assert [r["m"] for r in rep["rows"]] == [1, 16] and "w4a8" in rep["skipped"]
    assert "needs an NVIDIA CUDA GPU" in rep["skipped"]["w4a8"] and "M=    1" in capsys.readouterr().out


def test_tile_sweep_args_match_the_c_struct(monkeypatch, tmp_path):
    """tools/cutlass_w4a16_tiles.py hands csrc/w4a16_api.h's W4A16Args to the compiled candidates
    through ctypes: a field added or moved on one side only would pass garbage pointers to a GEMM."""
    import ctypes
    import importlib
    import subprocess

    pytest.importorskip("qlinear_cutlass")
    from qlinear.cuda_jit import find_nvcc
    from qlinear_cutlass.build import CSRC

    monkeypatch.syspath_prepend(str(ROOT))
    tiles = importlib.import_module("tools.cutlass_w4a16_tiles")
    nvcc = find_nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found")
    fields = [name for name, _ in tiles.W4A16Args._fields_]
    probe = tmp_path / "probe.cpp"
    probe.write_text('#include <cstddef>\n#include <cstdio>\n#include "w4a16_api.h"\nusing qlinear_cutlass::W4A16Args;\n'
                     "int main() {\n" + "".join(f'  std::printf("%zu\\n", offsetof(W4A16Args, {f}));\n' for f in fields)
                     + '  std::printf("%zu\\n", sizeof(W4A16Args));\n}\n')
    exe = tmp_path / "probe"
    r = subprocess.run([nvcc, "-std=c++17", f"-I{CSRC}", str(probe), "-o", str(exe)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    got = [int(v) for v in subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()]
    assert got == [getattr(tiles.W4A16Args, f).offset for f in fields] + [ctypes.sizeof(tiles.W4A16Args)]


def test_tile_sweep_build_command(monkeypatch):
    import importlib

    pytest.importorskip("qlinear_cutlass")
    monkeypatch.syspath_prepend(str(ROOT))
    tiles = importlib.import_module("tools.cutlass_w4a16_tiles")
    from qlinear.cuda_jit import find_nvcc
    from qlinear_cutlass.gates import cutlass_include_dirs

    if find_nvcc() is None or cutlass_include_dirs() is None:
        pytest.skip("needs nvcc and the CUTLASS headers")
    cmd = tiles.nvcc_command("n256m64k64c2-w8", tmp := pathlib.Path("x.so"))
    assert str(tmp) in cmd and "-shared" in cmd and "-gencode=arch=compute_90a,code=sm_90a" in cmd
    for flag in ("-DQLC_TILE_N=256", "-DQLC_TILE_M=64", "-DQLC_TILE_K=64", "-DQLC_CLUSTER_N=2", "-DQLC_STREAMK=1", "-DQLC_BITS=8"):
        assert flag in cmd
    assert "-DQLC_BITS=4" in tiles.nvcc_command("n128m16k64c1", tmp)
    gdc = tiles.nvcc_command("n128m64k64c2p-w8-gdc", tmp)  # PDL launches: CUTLASS's grid-dependency control on
    assert "-DQLC_GDC=1" in gdc and "-DCUTLASS_ENABLE_GDC_FOR_SM90=1" in gdc and "-DQLC_BITS=8" in gdc
    assert "-DQLC_GDC=0" in cmd and not any("CUTLASS_ENABLE_GDC" in f for f in cmd)
    assert tiles.base_of("n128m64k64c2p-w8-gdc@dp") == "n128m64k64c2p"


def test_decode_variant_library_builds_with_its_entry_points(monkeypatch, tmp_path):
    """tools/cutlass_w4a16_decode_sweep.py --build: the decode kernel as a standalone library (nvcc only),
    exporting the entry points --lib calls (the tile sweep's, so the same ctypes struct serves)."""
    import importlib
    import subprocess

    pytest.importorskip("qlinear_cutlass")
    from qlinear.cuda_jit import find_nvcc

    if find_nvcc() is None:
        pytest.skip("nvcc not found")
    monkeypatch.syspath_prepend(str(ROOT))
    sweep = importlib.import_module("tools.cutlass_w4a16_decode_sweep")
    lib = tmp_path / "shipped.so"
    r = subprocess.run(sweep.variant_command(lib, warps=4), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    syms = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True, check=True).stdout
    assert " qlc_w4a16_run" in syms and " qlc_w4a16_workspace" in syms


def test_stream_floor_program_builds(tmp_path):
    """tools/cutlass_tiles/stream_floor.cu (the memory floor of decode-size layers: a read-only streaming
    kernel and the decode kernels' load pattern alone, timed in CUDA graphs) compiles for sm_90a with nvcc
    alone and links to a program."""
    import subprocess

    pytest.importorskip("qlinear_cutlass")
    from qlinear.cuda_jit import find_nvcc
    from qlinear_cutlass.build import GENCODE

    nvcc = find_nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found")
    exe = tmp_path / "stream_floor"
    r = subprocess.run([nvcc, "-O3", "-std=c++17", GENCODE, str(ROOT / "tools" / "cutlass_tiles" / "stream_floor.cu"), "-o", str(exe)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert exe.stat().st_size > 0


def test_gather_library_builds_with_its_entry_points(monkeypatch, tmp_path):
    """tools/cutlass_w4a16_gather_bench.py --build: the provider's act-order gathers as one standalone
    library (nvcc only) exporting what --lib calls."""
    import importlib
    import subprocess

    pytest.importorskip("qlinear_cutlass")
    from qlinear.cuda_jit import find_nvcc

    if find_nvcc() is None:
        pytest.skip("nvcc not found")
    monkeypatch.syspath_prepend(str(ROOT))
    bench = importlib.import_module("tools.cutlass_w4a16_gather_bench")
    bench.build(str(tmp_path))
    syms = subprocess.run(["nm", "-D", "--defined-only", str(tmp_path / "gather.so")], capture_output=True, text=True,
                          check=True).stdout
    assert " qlc_gather" in syms
    # no GNU-unique symbol: the staged gather's shared-memory opt-in cache must be per library (a process
    # loads the bf16 and fp16 extensions, each with its own kernel to opt in)
    all_syms = subprocess.run(["nm", "--defined-only", str(tmp_path / "gather.so")], capture_output=True, text=True,
                              check=True).stdout
    assert "gather_rows_smem_limit" in all_syms and not [ln for ln in all_syms.splitlines() if " u " in ln]
