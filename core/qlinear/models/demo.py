"""The main job: a Llama-architecture model, end to end, per scheme.

    python -m qlinear.models.demo                       # tiny Llama (shipped config), CPU
    python -m qlinear.models.demo --preset llama3-8b --device cuda --static-cache

Builds the model from a transformers config shipped in ``qlinear/models/configs`` with weights from
a fixed seed (nothing is downloaded), generates greedily in bf16, then per scheme: quantizes it
(``quantize_model``), saves it as a compressed-tensors checkpoint and loads it back
(``save_quantized`` / ``load_quantized``; skipped for the 8B preset), generates, and prints the
kernel picked per layer type, decode tokens/s, and agreement with bf16 on bf16's own token
sequence, prompt included (top-1 agreement and the largest logit difference, teacher-forced).
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


def generate(model, ids: torch.Tensor, new: int, static_cache: bool) -> tuple[torch.Tensor, float]:
    """Greedy ``new`` tokens; returns (full sequence, decode tokens/s). Decode time is the time
    for ``new`` tokens minus the time for one (prefill + first token)."""
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
    _, t1 = run(1)
    out, tn = run(new)
    return out, (new - 1) / max(tn - t1, 1e-9)


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
    for name, m in model.named_modules():
        if isinstance(m, QuantLinear):
            seen.setdefault(name.rsplit(".", 1)[-1], set()).add(m.kernel.full_name())
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
    ap.add_argument("--no-save", action="store_true", help="skip the save/load round trip (default for llama3-8b)")
    ap.add_argument("--regime", choices=["decode", "prefill", "mixed"], default=None,
                    help="the M range each layer's kernel is chosen for from the tuned tables (like QLINEAR_REGIME; "
                         "decode = M <= 16, what token generation runs)")
    args = ap.parse_args(argv)
    if args.regime:
        from ..settings import override_settings

        with override_settings(regime=args.regime):
            return _run(args)
    return _run(args)


def _run(args) -> int:
    device = torch.device(args.device or ("cuda" if args.preset == "llama3-8b" else "cpu"))
    save = not args.no_save and args.preset != "llama3-8b"
    schemes = args.schemes.split(",") if args.schemes else (GPU_SCHEMES if device.type == "cuda" else CPU_SCHEMES)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} threads)"
    print(f"qlinear demo: {args.preset} Llama ({PRESETS[args.preset]}, seed 0) on {where}; prompt {args.prompt}, "
          f"{args.tokens} new tokens, greedy{', static KV cache' if args.static_cache else ''}"
          f"{f', regime {args.regime}' if args.regime else ''}")

    model = build_model(args.preset, device)
    nparams = sum(p.numel() for p in model.parameters())
    ids = prompt_ids(model.config.vocab_size, args.prompt, device)
    seq, tps_ref = generate(model, ids, args.tokens, args.static_cache)
    with torch.no_grad():
        ref_logits = model(seq).logits.float()
    del model
    gc.collect()
    print(f"bf16: {nparams / 1e6:.1f}M parameters, {tps_ref:.1f} tokens/s\n")
    rows = [("bf16", "torch F.linear", f"{tps_ref:.1f}", "1.00x", "100.0%", "0")]
    tmp = tempfile.TemporaryDirectory(prefix="qlinear-demo-") if save else None
    failed = 0
    for scheme in schemes:
        t0 = time.perf_counter()
        model = build_model(args.preset, device)
        try:
            quantize_model(model, scheme, calib=ids, show_progress=False, keep_checkpoint=save)
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
        prep = time.perf_counter() - t0
        try:
            out, tps = generate(model, ids, args.tokens, args.static_cache)
            top1, diff = agreement(model, seq, ref_logits, 0)
        except Exception as e:  # a kernel failing at run time is reported, the others still run
            print(f"{scheme}: FAILED while generating: {type(e).__name__}: {e}")
            failed += 1
            del model
            continue
        kern = kernels_by_type(model)
        print(f"{scheme}: {kern}  (prepared in {prep:.1f}s{note})")
        rows.append((scheme, kern.split(":")[0] + ("" if kern.count(":") == 1 else " (+more)"), f"{tps:.1f}",
                     f"{tps / tps_ref:.2f}x", f"{100 * top1:.1f}%", f"{diff:.3g}"))
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
        print("On a CUDA machine: bash scripts/main.sh --preset llama3-8b --static-cache  (Llama-3-8B-shaped, random weights)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
