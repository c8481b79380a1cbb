"""The main job's model demo and ``python -m qlinear``, run as a user runs them."""

import subprocess
import sys

import pytest

pytest.importorskip("transformers")
pytest.importorskip("compressed_tensors")


def test_demo_one_scheme_end_to_end():
    from qlinear.models import demo

    r = subprocess.run([sys.executable, "-m", "qlinear.models.demo", "--schemes", "w8a16-ch,int3-magic",
                        "--prompt", "4", "--tokens", "3", "--regime", "decode", "--fuse"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout
    assert "regime decode" in out.splitlines()[0] and "q/k/v and gate/up fused" in out.splitlines()[0], out.splitlines()[0]
    assert "bf16:" in out and "checkpoint" in out and "saved + reloaded" in out
    # --fuse: the bf16 model fused as a float model, the scheme's reloaded checkpoint from its layers
    assert "bf16 fused " in out and "fused after loading" in out and "q_proj+k_proj+v_proj" in out
    assert "int3-magic: skipped here" in out
    row = next(line for line in out.splitlines() if line.startswith("w8a16-ch "))
    # the kernel column names a registered W8A16-capable (MP family) kernel, whichever this machine picks
    from qlinear.registry import get_registry

    assert any(k.full_name() in row for k in get_registry().kernels("mp")), row
    assert set(demo.PRESETS) == {"tiny", "llama3-8b"}


def test_python_dash_m_qlinear_is_the_cli():
    r = subprocess.run([sys.executable, "-m", "qlinear", "explain", "w4a16-g128", "--n", "256", "--k", "256"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "MPLinearLayerConfig" in r.stdout or "selected" in r.stdout.lower()


def test_decode_loop_generates_what_generate_does():
    """The demo's own decode loop (static cache, device-side position, the step that --cuda-graph
    captures; run eagerly here) gives generate()'s greedy tokens on the tiny model."""
    import torch

    from qlinear.models import demo

    model = demo.build_model("tiny", torch.device("cpu"))
    ids = demo.prompt_ids(model.config.vocab_size, 5, "cpu")
    ref, _ = demo.generate(model, ids, 6, static_cache=False)
    seq, tps = demo.decode_loop(model, ids, 6, graph=False, reps=2)
    assert torch.equal(seq, ref), (seq, ref)
    assert tps > 0
    with pytest.raises(SystemExit):  # CUDA graphs need a CUDA device: refused up front, with the flag named
        demo.main(["--cuda-graph", "--device", "cpu"])


def test_decode_loop_compiled_step_matches():
    """The same loop with the step's model call through torch.compile (what --compile captures)."""
    import torch

    from qlinear.models import demo

    model = demo.build_model("tiny", torch.device("cpu"))
    ids = demo.prompt_ids(model.config.vocab_size, 5, "cpu")
    ref, _ = demo.decode_loop(model, ids, 4, graph=False, reps=1)
    seq, _ = demo.decode_loop(model, ids, 4, graph=False, compile_step=True, reps=1)
    assert torch.equal(seq, ref), (seq, ref)


def test_rates_that_did_not_separate_print_as_not_measured():
    """generate() returns NaN tokens/s when the best n-token run is not slower than the best 1-token run
    (a busy machine printed 2.3e10 tokens/s from one noisy pair); the table says n/a, not nan or a ratio."""
    from qlinear.models import demo

    nan = float("nan")
    assert demo._rate(nan) == "n/a" and demo._rate(16.25) == "16.2"
    assert demo._speedup(nan, 16.0) == "n/a" and demo._speedup(20.0, nan) == "n/a" and demo._speedup(20.0, 16.0) == "1.25x"
