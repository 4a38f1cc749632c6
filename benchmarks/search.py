"""Benchmark sparsing_lib's CETT threshold search against a re-implementation of the official algorithm.

    python benchmarks/search.py --size tiny --out /tmp/bench          # CPU check, seconds
    python benchmarks/search.py --size full --out $OUT                  # H200, 2.4B shape

Parts (all on one random-weight Llama-style ReLU model of the given shape, bf16 on GPU, fp32 on CPU):
  A  per-layer threshold search on the same captured activations: the official algorithm (65,536 candidate
     thresholds between min and the 0.99 quantile of the neuron output norms, bisection, fp32 matmuls
     without TF32, one CETT evaluation per step) versus sparsing_lib's curve search, for one CETT value
     and for the ~20 CETT values an outer CETT-PPL bisection visits; agreement of thresholds in CETT and in
     activation ratio.
  B  calibration at scale: sparsing_lib.metrics.cett_curves over N tokens (streamed), wall time and peak
     GPU memory, against one dense forward pass over the same tokens.
  C  CETT-PPL-1% on the same model rescaled so that its FFNs matter (``ffn_dominant``), on text sampled
     from it at temperature 1 (so that sparsifying raises its PPL): forward-pass
     equivalents (wall time / one dense pass), passes, final PPL ratio.

The code's revision in the output comes from ``sparsing_lib.paths.git_state`` (git, else SPARSING_GIT_REV).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import transformers as tf

from sparsing_lib import metrics as M
from sparsing_lib.capture import Hooks, ffn_layers, run
from sparsing_lib.paths import git_state
from sparsing_lib.search import AROUND, CurveBuilder, around, broad_targets, cett_sums

SIZES = {  # d_model, d_ff, layers, heads, vocab, tokens for A (per layer), tokens for B, tokens for C, seq len
    "tiny": dict(
        d=64,
        d_ff=160,
        layers=4,
        heads=4,
        vocab=512,
        tokens_a=4096,
        tokens_b=16384,
        tokens_c=4096,
        seq=128,
        layers_a=[0, 3],
        max_tokens=4096,
    ),
    "full": dict(
        d=2304,
        d_ff=5760,
        layers=40,
        heads=36,
        vocab=32000,
        tokens_a=65536,
        tokens_b=1 << 20,
        tokens_c=1 << 16,
        seq=1024,
        layers_a=[0, 13, 26, 39],
        max_tokens=16384,
    ),
}
CETTS = (0.05, 0.1, 0.2, 0.4)
OUTER_ROUNDS = 20  # bisection of [0, 1] to 1e-6 takes 20 rounds


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeat=1):
    """(median seconds, last result)."""
    times, out = [], None
    for _ in range(repeat):
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def official_threshold(a, w, y, target, n_cands=65536):
    """Faithful re-implementation of the official per-layer search (fp32 throughout)."""
    a, w = a.float(), w.float()
    norm = a.abs() * w.norm(dim=0)
    flat = norm.flatten()
    sub = flat[:: max(1, flat.numel() // n_cands)][:n_cands]
    cands = torch.linspace(flat.min().item(), torch.quantile(sub, 0.99).item(), n_cands, device=a.device)
    y_norm = y.float().norm(dim=1)
    left, right = 0, n_cands
    while left < right:
        mid = (left + right) // 2
        tail = torch.where(norm <= cands[mid], a, 0.0)
        cett = ((tail @ w.t()).norm(dim=1) / y_norm).mean().item()
        if cett <= target:
            left = mid + 1
        else:
            right = mid
    return cands[max(left - 1, 0)].item()


def ours_thresholds(a, w, y, targets, broad):
    """sparsing_lib's curve search on the same activations (one chunk)."""
    b = CurveBuilder(broad_targets(24) if broad else around(targets[0]))
    b.add(a, w, y, w.float().norm(dim=0))
    curve = b.curve(0)
    return [curve.threshold(c) for c in targets]


def exact_cett_and_activity(a, w, y, t):
    col = w.float().norm(dim=0)
    cett = (cett_sums(a.float(), w.float(), y.float().norm(dim=1), col, torch.tensor([t])) / len(a)).item()
    active = ((a.abs().float() * col) >= t) & (a != 0)
    return cett, active.float().mean().item()


def build(size, device, dtype):
    s = SIZES[size]
    cfg = tf.LlamaConfig(
        vocab_size=s["vocab"],
        hidden_size=s["d"],
        intermediate_size=s["d_ff"],
        num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"],
        num_key_value_heads=s["heads"],
        hidden_act="relu",
        max_position_embeddings=s["seq"],
        tie_word_embeddings=True,
    )
    with torch.device(device):
        model = tf.LlamaForCausalLM(cfg).to(dtype).eval()
    return model


def capture_layers(model, ids, layers, max_tokens):
    keep = {}
    store = {i: {"a": [], "y": []} for i in layers}

    def watch(i, a, s, y):
        if i in store:
            store[i]["a"].append(a.clone())
            store[i]["y"].append(y.clone())

    run(model, Hooks(model, watch=watch), ids, None, max_tokens)
    ffns = ffn_layers(model)
    for i in layers:
        keep[i] = (torch.cat(store[i]["a"]), ffns[i].weight().detach(), torch.cat(store[i]["y"]))
    return keep


def gemm_rates(device, dtype):
    n = 4096 if device.type == "cuda" else 512
    out = {}
    for name, dt in (("fp32", torch.float32), (str(dtype).split(".")[-1], dtype)):
        x = torch.randn(n, n, device=device, dtype=dt)
        yy = torch.randn(n, n, device=device, dtype=dt)
        sec, _ = timed(lambda: [x @ yy for _ in range(10)], device, repeat=3)
        out[name] = 2 * n**3 * 10 / sec / 1e12
    return out


def part_a(model, device, s, log):
    g = torch.Generator(device="cpu").manual_seed(0)
    ids = torch.randint(0, s["vocab"], (s["tokens_a"] // s["seq"], s["seq"]), generator=g)
    layers = capture_layers(model, ids, s["layers_a"], s["max_tokens"])
    rows = []
    for i, (a, w, y) in layers.items():
        t_our1, th_our = timed(lambda: ours_thresholds(a, w, y, [CETTS[1]], broad=False), device, repeat=3)
        grid = CurveBuilder(around(CETTS[1]))
        grid.add(a, w, y, w.float().norm(dim=0))
        t_grid, _ = timed(
            lambda: cett_sums(a, w, y.float().norm(dim=1), w.float().norm(dim=0), grid.grid), device, repeat=3
        )
        t_broad, th_broad = timed(lambda: ours_thresholds(a, w, y, list(CETTS), broad=True), device, repeat=3)
        for c, tb in zip(CETTS, th_broad):
            t_off, to = timed(lambda: official_threshold(a, w, y, c), device, repeat=2 if c == CETTS[1] else 1)
            c_off, act_off = exact_cett_and_activity(a, w, y, to)
            c_b, act_b = exact_cett_and_activity(a, w, y, tb)
            row = dict(
                layer=i,
                cett=c,
                official_threshold=to,
                broad_threshold=tb,
                official_cett=c_off,
                broad_cett=c_b,
                official_act=act_off,
                broad_act=act_b,
                time_official_s=t_off,
            )
            if c == CETTS[1]:
                c_o, act_o = exact_cett_and_activity(a, w, y, th_our[0])
                row.update(
                    targeted_threshold=th_our[0],
                    targeted_cett=c_o,
                    targeted_act=act_o,
                    time_targeted_s=t_our1,
                    time_targeted_grid_s=t_grid,
                    time_broad_s=t_broad,
                )
            rows.append(row)
            log(json.dumps(row))
    return rows


def ffn_dominant(model, embed_gain=5.0, ffn_gain=4.0):
    """Scale a random model so that its FFNs matter for its predictions: larger embeddings (tied, so larger
    logits) and larger down projections. With plain random init the PPL barely moves when FFNs are zeroed."""
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(embed_gain)
        for f in ffn_layers(model):
            f.down.weight.mul_(ffn_gain)
    return model


def sampled(model, n_seq, length, vocab, device):
    g = torch.Generator(device=device).manual_seed(1)
    ids = torch.randint(0, vocab, (n_seq, 1), device=device, generator=g)
    out = model.generate(
        ids,
        do_sample=True,
        temperature=1.0,
        top_k=0,
        max_new_tokens=length - 1,
        min_new_tokens=length - 1,
        pad_token_id=0,
    )
    return out.cpu()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", choices=SIZES, default="tiny")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--parts", default="ABC")
    args = ap.parse_args()
    s = SIZES[args.size]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.backends.cuda.matmul.allow_tf32 = False  # the official search runs true fp32
    args.out.mkdir(parents=True, exist_ok=True)
    logf = open(args.out / f"search_{args.size}.log", "w")

    def log(msg):
        print(msg, flush=True)
        logf.write(msg + "\n")
        logf.flush()

    git = git_state()
    meta = dict(
        size=args.size,
        shape=s,
        rev=git["revision"],
        git_dirty=git["dirty"],
        git_rev_source=git["source"],
        device=torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        torch=torch.__version__,
        transformers=tf.__version__,
        python=platform.python_version(),
        dtype=str(dtype),
        cetts=CETTS,
        outer_rounds=OUTER_ROUNDS,
    )
    log(json.dumps(meta))
    torch.manual_seed(0)
    model = build(args.size, device, dtype)
    result = dict(meta=meta, gemm_tflops=gemm_rates(device, dtype))
    log(json.dumps(result["gemm_tflops"]))

    if "A" in args.parts:
        result["A"] = part_a(model, device, s, log)
    if "B" in args.parts:
        ids = torch.randint(0, s["vocab"], (s["tokens_b"] // s["seq"], s["seq"]))
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t_dense, _ = timed(lambda: M.evaluate(model, ids, batch_size=s["max_tokens"] // s["seq"]), device)
        t_curves, _ = timed(lambda: M.cett_curves(model, ids, max_tokens=s["max_tokens"]), device)
        peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
        result["B"] = dict(
            tokens=ids.numel(),
            dense_pass_s=t_dense,
            curves_s=t_curves,
            grid_points=24,
            peak_gib=peak,
            max_tokens=s["max_tokens"],
        )
        log(json.dumps(result["B"]))
    if "C" in args.parts:
        ffn_dominant(model)
        t_gen, ids = timed(lambda: sampled(model, s["tokens_c"] // s["seq"], s["seq"], s["vocab"], device), device)
        t_dense, dense = timed(lambda: M.evaluate(model, ids, batch_size=s["max_tokens"] // s["seq"]), device)
        try:
            t_ppl, res = timed(lambda: M.cett_ppl(model, ids, p=0.01, tol=5e-4, max_tokens=s["max_tokens"]), device)
            result["C"] = dict(
                tokens=ids.numel(),
                generate_s=t_gen,
                dense_pass_s=t_dense,
                dense_ppl=dense.ppl,
                cett_ppl_s=t_ppl,
                forward_equivalents=t_ppl / t_dense,
                passes=res.forward_passes,
                cett=res.cett,
                ppl_ratio=res.mean_ppl_ratio,
                activation_ratio=res.activation_ratio[0],
                converged=res.converged,
                history=res.history,
            )
        except ValueError as e:  # e.g. the target is unreachable on this random model
            result["C"] = dict(tokens=ids.numel(), dense_ppl=dense.ppl, error=str(e))
        log(json.dumps(result["C"]))
    (args.out / f"search_{args.size}.json").write_text(json.dumps(result, indent=1))
    summarize(result, log)


def summarize(r, log):
    log("\n=== summary ===")
    if "A" in r:
        single = [x for x in r["A"] if "time_targeted_s" in x]
        off = sum(x["time_official_s"] for x in single)
        tgt = sum(x["time_targeted_s"] for x in single)
        grid = sum(x["time_targeted_grid_s"] for x in single)
        broad = sum(x["time_broad_s"] for x in single)
        off_all = sum(x["time_official_s"] for x in r["A"])
        n = len(single)
        log(f"A  layers {[x['layer'] for x in single]}, {r['meta']['shape']['tokens_a']} tokens each")
        log(
            f"   one CETT value:   official {off / n:.3f} s/layer, ours {tgt / n:.4f} s/layer  -> {off / tgt:.1f}x"
            f"  (of which the {len(AROUND)} exact grid evaluations {grid / n:.4f} s)"
        )
        log(
            f"   {len(CETTS)} CETT values (measured): official {off_all / n:.2f} s/layer, ours (one curve) "
            f"{broad / n:.4f} s/layer -> {off_all / broad:.0f}x"
        )
        log(
            f"   CETT-PPL search ({OUTER_ROUNDS} outer rounds, official re-searches each round; extrapolated from the "
            f"one-value time x{OUTER_ROUNDS}): official {OUTER_ROUNDS * off / n:.2f} s/layer, ours (one curve) "
            f"{broad / n:.4f} s/layer -> {OUTER_ROUNDS * off / broad:.0f}x"
        )
        d_cett = max(abs(x["targeted_cett"] - x["cett"]) for x in single)
        d_act = max(abs(x["targeted_act"] - x["official_act"]) for x in single)
        log(f"   targeted vs official: max |CETT - target| {d_cett:.2e}, max |act - act_official| {100 * d_act:.3f} pp")
        d_cett = max(abs(x["broad_cett"] - x["cett"]) for x in r["A"])
        d_off = max(abs(x["official_cett"] - x["cett"]) for x in r["A"])
        d_act = max(abs(x["broad_act"] - x["official_act"]) for x in r["A"])
        log(
            f"   curve vs official over CETT {list(CETTS)}: max |CETT - target| ours {d_cett:.2e}, official "
            f"{d_off:.2e}; max |act - act_official| {100 * d_act:.3f} pp"
        )
    if "B" in r:
        b = r["B"]
        log(
            f"B  {b['tokens']} tokens: curves {b['curves_s']:.1f} s ({b['curves_s'] / b['dense_pass_s']:.1f} dense "
            f"passes of {b['dense_pass_s']:.1f} s), peak {b['peak_gib']:.1f} GiB"
        )
    if "C" in r:
        c = r["C"]
        if "error" in c:
            log(f"C  {c['tokens']} tokens: {c['error']}")
        else:
            log(
                f"C  {c['tokens']} tokens: CETT-PPL-1% cett {c['cett']:.4f}, PPL ratio {c['ppl_ratio']:.5f}, "
                f"{c['passes']} passes, {c['forward_equivalents']:.1f} forward-equivalents, "
                f"activation {100 * c['activation_ratio']:.2f}%"
            )


if __name__ == "__main__":
    main()
