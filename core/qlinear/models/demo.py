"""The main job: a Llama-architecture model, end to end, per scheme.

    python -m qlinear.models.demo                       # tiny Llama (shipped config), CPU
    python -m qlinear.models.demo --preset llama3-8b --device cuda --cuda-graph --compile --regime decode \
        --fuse --profile 16

Builds the model from a transformers config shipped in ``qlinear/models/configs`` with weights from
a fixed seed (nothing is downloaded), generates greedily in bf16, then per scheme: quantizes it
(``quantize_model``), saves it as a compressed-tensors checkpoint and loads it back
(``save_quantized`` / ``load_quantized``; skipped for the 8B preset), generates, and prints the
kernel picked per layer type, decode tokens/s, and agreement with bf16 on bf16's own token
sequence, prompt included (top-1 agreement and the largest logit difference, teacher-forced).
``--fuse`` runs q/k/v and gate/up as one linear each (``fuse_projections``, also timed in bf16),
``--lm-head`` quantizes lm_head too, ``--profile`` says where the decode step's device time goes.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time

import torch

from ..selection import NoKernelError
from .fuse import FusedProjection, fuse_projections
from .quantize import quantize_model

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "configs")
PRESETS = {"tiny": "tiny-llama.json", "llama3-8b": "llama3-8b.json"}
CPU_SCHEMES = ("w4a16-g128", "w4a16-g128-actorder", "awq-g128", "w8a16-ch", "int8-dynamic", "int8-static",
               "fp8-dynamic", "fp8-tensor", "fp8-block", "nvfp4", "mxfp4", "mxfp8")
GPU_SCHEMES = ("w4a16-g128", "awq-g128", "w8a16-ch", "int8-dynamic", "fp8-dynamic", "fp8-block")


def build_model(preset: str, device: torch.device, seed: int = 0):
    """The preset's LlamaForCausalLM in bf16 with weights from ``seed`` (same seed, same weights)."""
    from transformers import AutoConfig, LlamaForCausalLM

    from .checkpoint import from_config

    cfg = AutoConfig.from_pretrained(os.path.join(CONFIG_DIR, PRESETS[preset]))
    torch.manual_seed(seed)
    with torch.device(device):
        model = from_config(LlamaForCausalLM, cfg, torch.bfloat16)
    return model.eval()


def prompt_ids(vocab: int, n: int, device, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, vocab, (1, n), generator=g).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(tps: float) -> str:
    """tokens/s as printed: 'n/a' where the timing did not separate (``generate``)."""
    return "n/a" if tps != tps else f"{tps:.1f}"


def _speedup(tps: float, ref: float) -> str:
    return "n/a" if tps != tps or ref != ref else f"{tps / ref:.2f}x"


def generate(model, ids: torch.Tensor, new: int, static_cache: bool, reps: int = 3) -> tuple[torch.Tensor, float]:
    """Greedy ``new`` tokens; returns (full sequence, decode tokens/s). Decode time is the time
    for ``new`` tokens minus the time for one (prefill + first token), each the best of ``reps`` runs
    (a single pair on a busy machine gave one token taking longer than ``new``: billions of tokens/s);
    NaN when even the best runs do not separate (the caller prints it as not measured)."""
    kw = dict(do_sample=False, eos_token_id=None, pad_token_id=0)
    if static_cache:
        kw["cache_implementation"] = "static"
    dev = ids.device

    def run(n):
        _sync(dev)
        t = time.perf_counter()
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=n, min_new_tokens=n, **kw)
        _sync(dev)
        return out, time.perf_counter() - t

    if static_cache:  # the compiled decode step is specialized to the cache length (prompt + new):
        run(new)      # compile and record at that length, outside the timed runs (a run of 1 token
        run(new)      # is prefill only, eager, and does not disturb the compiled step)
    else:
        run(2)  # warm up (kernel JIT, caches)
    t1 = min(run(1)[1] for _ in range(max(1, reps)))
    tn = float("inf")
    for _ in range(max(1, reps)):
        out, t = run(new)
        tn = min(tn, t)
    return out, (new - 1) / (tn - t1) if tn > t1 else float("nan")


def decode_loop(model, ids: torch.Tensor, new: int, *, graph: bool, compile_step: bool = False,
                reps: int = 3, profile: int = 0, report: dict | None = None) -> tuple[torch.Tensor, float]:
    """Greedy ``new`` tokens with transformers' static KV cache and a decode loop of our own: the
    prompt runs eagerly (prefill, first token), then one decode step (1 token at a device-side
    position) is captured as a CUDA graph (``graph``) and replayed per token. Nothing in the loop
    goes back to the host, so tokens/s is the device time of the step: what a serving engine with
    CUDA graphs sees, without ``generate``'s per-token Python. ``compile_step``: the step's model call
    goes through ``torch.compile`` first (Inductor fuses the norms, rotary and residual adds, which
    eagerly are ~40 small kernels per layer; each qlinear layer stays one opaque op). ``graph=False``
    runs the same step eagerly (CPU tests check the loop against ``generate``). Returns (sequence,
    decode tokens/s: the best of ``reps`` timed runs of the ``new - 1`` steps after the first token).
    ``profile``: then run that many steps under the profiler and put the breakdown in
    ``report["profile"]`` (``step_profile.profile_steps``)."""
    from transformers import StaticCache

    dev = ids.device
    p = ids.shape[1]
    cache = StaticCache(config=model.config, max_cache_len=p + new)
    seq = torch.zeros(1, p + new, dtype=ids.dtype, device=dev)
    tok = torch.zeros(1, 1, dtype=ids.dtype, device=dev)
    pos = torch.zeros(1, dtype=torch.long, device=dev)

    # positions are passed both ways: as cache_position (read by older StaticCache versions) and as
    # position_ids (newer ones keep their own device-side length, which reset() zeroes)
    def prefill():  # (re)starts the sequence
        cache.reset()
        at = torch.arange(p, device=dev)
        logits = model(input_ids=ids, past_key_values=cache, cache_position=at, position_ids=at[None],
                       use_cache=True).logits
        seq.zero_()
        seq[:, :p] = ids
        tok.copy_(logits[:, -1:].argmax(-1))
        pos.fill_(p)

    def next_token(tok, pos):
        logits = model(input_ids=tok, past_key_values=cache, cache_position=pos, position_ids=pos[None],
                       use_cache=True).logits
        return logits[:, -1:].argmax(-1)

    fwd = torch.compile(next_token, dynamic=False) if compile_step else next_token

    def step():  # token `tok` at position `pos`: stored, fed, its successor becomes `tok`
        seq.index_copy_(1, pos, tok)
        tok.copy_(fwd(tok, pos))
        pos.add_(1)

    run = step
    with torch.no_grad():
        prefill()
        if graph:
            side = torch.cuda.Stream(dev)
            side.wait_stream(torch.cuda.current_stream(dev))
            with torch.cuda.stream(side):  # warm up off the capture (lazy allocations, JIT builds)
                for _ in range(2):
                    step()
            torch.cuda.current_stream(dev).wait_stream(side)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g, stream=side):
                step()
            run = g.replay
        best = float("inf")
        for _ in range(max(1, reps)):
            prefill()
            _sync(dev)
            t = time.perf_counter()
            for _ in range(new - 1):
                run()
            _sync(dev)
            best = min(best, time.perf_counter() - t)
        seq[:, -1:] = tok
        out = seq.clone()  # profiling below runs the sequence again
        if profile and report is not None and dev.type == "cuda":
            from .step_profile import profile_steps

            prefill()  # the profiled steps write positions p.. like the timed ones
            report["profile"] = profile_steps(run, min(profile, new - 1), dev)
    return out, (new - 1) / max(best, 1e-9)


def agreement(model, seq: torch.Tensor, ref_logits: torch.Tensor, start: int) -> tuple[float, float]:
    """Top-1 agreement with the reference logits on positions ``start:``, and max |logit diff|."""
    with torch.no_grad():
        logits = model(seq).logits[0, start:].float()
    ref = ref_logits[0, start:].float()
    top1 = (logits.argmax(-1) == ref.argmax(-1)).float().mean().item()
    return top1, (logits - ref).abs().max().item()


def kernels_by_type(model) -> str:
    from ..nn import QuantLinear

    seen: dict[str, set[str]] = {}
    # a fused group's layer is its head's child `fused`: name it after the group (q_proj+k_proj+v_proj)
    labels = {id(m.fused): m.label for m in model.modules() if isinstance(m, FusedProjection) and m.fused is not None}
    for name, m in model.named_modules():
        if isinstance(m, QuantLinear):
            seen.setdefault(labels.get(id(m), name.rsplit(".", 1)[-1]), set()).add(m.kernel.full_name())
    # one line per kernel, listing the layer types that use it
    by_kernel: dict[str, list[str]] = {}
    for t, ks in seen.items():
        for k in sorted(ks):
            by_kernel.setdefault(k, []).append(t)
    return "; ".join(f"{k}: {','.join(ts)}" for k, ts in by_kernel.items())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qlinear.models.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda for llama3-8b, else cpu)")
    ap.add_argument("--schemes", default=None, help="comma list (default: every scheme the device suits)")
    ap.add_argument("--prompt", type=int, default=24, help="prompt length in tokens")
    ap.add_argument("--tokens", type=int, default=24, help="tokens to generate")
    ap.add_argument("--static-cache", action="store_true", help="transformers' static KV cache (compiles the decode step)")
    ap.add_argument("--cuda-graph", action="store_true",
                    help="decode with a static KV cache and one CUDA graph of the decode step replayed per token "
                         "(no generate(): measures the device time of a token, as a serving engine would see it)")
    ap.add_argument("--compile", action="store_true",
                    help="with --cuda-graph: torch.compile the decode step before capturing it (fuses the "
                         "non-linear ops; the first step takes a minute or two to compile)")
    ap.add_argument("--no-save", action="store_true", help="skip the save/load round trip (default for llama3-8b)")
    ap.add_argument("--fuse", action="store_true",
                    help="fuse q/k/v and gate/up into one linear each (fuse_projections): the float model before "
                         "quantizing, or, with the checkpoint round trip, the reloaded quantized model; adds a "
                         "'bf16 fused' row")
    ap.add_argument("--lm-head", action="store_true", help="quantize lm_head too (by default it stays bf16)")
    ap.add_argument("--profile", type=int, default=0, metavar="STEPS",
                    help="with --cuda-graph: profile STEPS replayed decode steps per scheme and print where the "
                         "device time goes (GEMMs, attention, the rest)")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the table (and profiles) as JSON")
    ap.add_argument("--regime", choices=["decode", "prefill", "mixed"], default=None,
                    help="the M range each layer's kernel is chosen for from the tuned tables (like QLINEAR_REGIME; "
                         "decode = M <= 16, what token generation runs)")
    args = ap.parse_args(argv)
    if args.cuda_graph and _device(args).type == "cpu":
        ap.error("--cuda-graph: needs --device cuda")
    if args.compile and not args.cuda_graph:
        ap.error("--compile: goes with --cuda-graph (--static-cache compiles through generate itself)")
    if args.profile and not args.cuda_graph:
        ap.error("--profile: goes with --cuda-graph (it profiles the replayed decode step)")
    if args.profile < 0:
        ap.error(f"--profile: a number of steps, got {args.profile}")
    if args.regime:
        from ..settings import override_settings

        with override_settings(regime=args.regime):
            return _run(args)
    return _run(args)


def _device(args) -> torch.device:
    return torch.device(args.device or ("cuda" if args.preset == "llama3-8b" else "cpu"))


def _generate(model, ids, args, report: dict) -> tuple[torch.Tensor, float]:
    if args.cuda_graph:
        return decode_loop(model, ids, args.tokens, graph=True, compile_step=args.compile, profile=args.profile,
                           report=report)
    return generate(model, ids, args.tokens, args.static_cache)


def _report_profile(name: str, report: dict, tps: float, results: dict) -> None:
    if "profile" in report:
        from .step_profile import format_profile

        print(f"{name}: where a decode step's device time goes")
        print(format_profile(report["profile"], 1e6 / tps))
        results.setdefault("profiles", {})[name] = report["profile"]


def _run(args) -> int:
    device = _device(args)
    save = not args.no_save and args.preset != "llama3-8b"
    skip = () if args.lm_head else ("lm_head",)
    schemes = args.schemes.split(",") if args.schemes else (GPU_SCHEMES if device.type == "cuda" else CPU_SCHEMES)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} threads)"
    print(f"qlinear demo: {args.preset} Llama ({PRESETS[args.preset]}, seed 0) on {where}; prompt {args.prompt}, "
          f"{args.tokens} new tokens, greedy{', static KV cache' if args.static_cache else ''}"
          f"{', static KV cache + one CUDA graph per decode step' if args.cuda_graph else ''}"
          f"{' (torch.compile)' if args.cuda_graph and args.compile else ''}"
          f"{f', regime {args.regime}' if args.regime else ''}"
          f"{', q/k/v and gate/up fused' if args.fuse else ''}{', lm_head quantized' if args.lm_head else ''}")
    # the options, less the output path (a machine's own path has no place in a results file)
    results: dict = {"device": where, "args": {k: v for k, v in vars(args).items() if k != "json"}, "rows": []}

    model = build_model(args.preset, device)
    nparams = sum(p.numel() for p in model.parameters())
    ids = prompt_ids(model.config.vocab_size, args.prompt, device)
    report: dict = {}
    seq, tps_ref = _generate(model, ids, args, report)
    with torch.no_grad():
        ref_logits = model(seq).logits.float()
    print(f"bf16: {nparams / 1e6:.1f}M parameters, {_rate(tps_ref)} tokens/s")
    _report_profile("bf16", report, tps_ref, results)
    rows = [("bf16", "torch F.linear", _rate(tps_ref), "1.00x", "100.0%", "0")]
    if args.fuse:  # what fusing alone gives, so the quantized rows' gain is not mistaken for quantization's
        fuse_projections(model)
        report = {}
        _, tps = _generate(model, ids, args, report)
        top1, diff = agreement(model, seq, ref_logits, 0)
        print(f"bf16 fused: {_rate(tps)} tokens/s")
        _report_profile("bf16 fused", report, tps, results)
        rows.append(("bf16 fused", "torch F.linear", _rate(tps), _speedup(tps, tps_ref), f"{100 * top1:.1f}%",
                     f"{diff:.3g}"))
    del model
    gc.collect()
    print()
    tmp = tempfile.TemporaryDirectory(prefix="qlinear-demo-") if save else None
    failed = 0
    for scheme in schemes:
        t0 = time.perf_counter()
        model = build_model(args.preset, device)
        if args.fuse and not save:  # fused as a float model, then quantized
            fuse_projections(model)
        try:
            quantize_model(model, scheme, skip=skip, calib=ids, show_progress=False, keep_checkpoint=save)
        except (NoKernelError, ValueError) as e:
            print(f"{scheme}: skipped here: {str(e).splitlines()[0]}")
            del model
            continue
        note = ""
        if save:
            from .checkpoint import load_quantized, save_quantized

            path = os.path.join(tmp.name, scheme)
            save_quantized(model, path)
            mb = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)) / 1e6
            del model
            gc.collect()
            model = load_quantized(path, device=device, show_progress=False)
            note = f", checkpoint {mb:.1f} MB saved + reloaded"
            if args.fuse:  # a checkpoint stores q/k/v apart: fused from the loaded layers, as a user would
                try:
                    fuse_projections(model)
                    note += ", fused after loading"
                except ValueError as e:
                    note += f", not fused ({str(e).splitlines()[0]})"
        prep = time.perf_counter() - t0
        report = {}
        try:
            out, tps = _generate(model, ids, args, report)
            top1, diff = agreement(model, seq, ref_logits, 0)
        except Exception as e:  # a kernel failing at run time is reported, the others still run
            print(f"{scheme}: FAILED while generating: {type(e).__name__}: {e}")
            failed += 1
            del model
            continue
        kern = kernels_by_type(model)
        print(f"{scheme}: {kern}  (prepared in {prep:.1f}s{note})")
        _report_profile(scheme, report, tps, results)
        rows.append((scheme, kern.split(":")[0] + ("" if kern.count(":") == 1 else " (+more)"), _rate(tps),
                     _speedup(tps, tps_ref), f"{100 * top1:.1f}%", f"{diff:.3g}"))
        del model
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if tmp is not None:
        tmp.cleanup()
    head = ("scheme", "kernel", "tokens/s", "vs bf16", "top-1 agree", "max |dlogit|")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    print()
    for r in [head] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print(f"\n(top-1 agreement and logit difference: teacher-forced on bf16's prompt + {args.tokens} greedy tokens; "
          "random weights, so agreement measures quantization noise, not model quality)")
    if device.type == "cpu":
        print("On a CUDA machine: bash scripts/main.sh --preset llama3-8b --cuda-graph --compile --regime decode --fuse  "
              "(Llama-3-8B-shaped, random weights, one CUDA graph per decode step)")
    if args.json:
        import json

        results["rows"] = [dict(zip(head, r)) for r in rows]
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
