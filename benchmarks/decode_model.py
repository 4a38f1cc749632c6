"""Whole-model decoding tokens/s, dense against sparse FFNs in one minimal engine (static KV cache, one CUDA
graph per decode step).

    SPARSING_GIT_REV=<rev> python benchmarks/decode_model.py --out $OUT     # one H200, ~2 minutes
    python benchmarks/decode_model.py --smoke --out /tmp/decode              # CPU, reference path

The engine is a Llama-layout decoder (weightless RMSNorm, multi-head attention over a static cache, gated ReLU
FFN, tied embeddings; no position encoding, which reads no weights and costs a fused engine almost nothing)
written with few launches per layer: the fused QKV product (one 3d × d matrix) on the raw residual stream, one
attention launch that applies the norm's per-token scale, writes the new key and value into the cache and attends
over the cached positions up to the current one (``decode.attention`` on a GPU, ``decode.reference`` on a CPU;
the norm has no weight, so its scale commutes with the product), the output projection with the residual add
fused into cuBLAS, the FFN's input norm and the FFN; the output head takes the argmax of the un-normed logits
(the norm's positive scale cannot change it). The dense and sparse engines differ only in the FFN call (cuBLAS
with the residual add in the down product, or the Triton kernels with it in their last step), and each whole
step, argmax included, is one CUDA graph. With ``--compile [MODE]`` (off by default) the plain-torch parts of a
step outside the FFN (``PARTS``: the output projection with the FFN's input norm, and the head) run through
torch.compile (MODE "default" or "max-autotune-no-cudagraphs"), identically for both engines: the step stays
one CUDA graph, and the FFN call is still the only difference. The first step's hidden state of the compiled
dense engine is checked against the eager one, and rows carry ``engine`` (eager or compiled). Each case also
times a step with its FFN calls skipped (``non_ffn_us``, since code after c7f51dc): the part both engines share.
Models: the paper's 2.4B shape (d 2304, 40 layers, d_ff 5760, 36 heads, vocabulary 32000, ours) and our largest
probed ReLU run's model at its true size (``bench.largest_run``: the scale-family run with the most
non-embedding parameters that has a sparsity.csv; its shape read from its config.json), both with random weights
whose activations follow that run's measured per-layer ratios (last checkpoint; stretched over 40 layers by
depth). The run is named in the log and in the ``run`` column. Random weights have no such pattern
by themselves: coordinate 0 of the residual stream is held constant (embedding column, and zero rows in the
attention-output and down projections), so that the gate's column 0 acts as a per-layer bias, calibrated on
64 tokens to make the wanted fraction of gates positive. Patterns: ``active = CETT ratios`` (the layer's
CETT-PPL-1% ratio of gates positive, zero cut) and ``CETT cut on ReLU`` (the fraction of non-zero
activations positive, then a CETT threshold keeping the CETT-PPL-1% ratio). Writes decode_model.csv/.log and
decode_summary.csv under --out.
"""

from __future__ import annotations

import argparse
import functools
import gc
import sys
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from sparsing_lib.decode import bench, gather_ffn
from sparsing_lib.decode.reference import cache_attention
from sparsing_lib.runs import parse_run

PAPER_2B4 = (2304, 40, 5760, 36, 32000)  # (d, layers, d_ff, heads, vocab): the paper's 2.4B shape, our vocabulary
SMOKE = (64, 3, 160, 4, 128)
COMPILE_MODES = ("default", "max-autotune-no-cudagraphs")


def models(run: str, cuda: bool) -> dict[str, tuple[int, int, int, int, int]]:
    """Model name -> (d, layers, d_ff, heads, vocab) of the models decoded: on a GPU the 2.4B shape and ``run``'s
    own model at its true size (from its config.json), on the CPU a toy model."""
    return {"2.4B": PAPER_2B4, parse_run(run)[0]: bench.run_model(run)} if cuda else {"smoke": SMOKE}


def attend(att: torch.Tensor, hs: torch.Tensor, wo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The attention output projected and added to the residual stream; and the FFN's input (the normed
    result)."""
    hs = torch.addmm(hs, att, wo.T)
    return hs, F.rms_norm(hs, hs.shape[-1:])


def head(hs: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """The next tokens: argmax of the tied output head on the residual stream (the final norm scales a token's
    logits by a positive number, so it cannot change their argmax, and is left out)."""
    return (hs @ emb.T).argmax(-1)


PARTS = {"attend": attend, "head": head}  # a step's plain-torch parts outside its FFN and attention launches


@functools.cache
def compiled_parts(mode: str) -> dict:
    """``PARTS`` through torch.compile, once per process (every engine shares them; static shapes, so each model
    and batch gets its own kernels). None of them writes its inputs: the cache write stays in the attention
    launch, so that no compiled graph copies a mutated input back."""
    return {k: torch.compile(f, mode=mode, dynamic=False) for k, f in PARTS.items()}


class Engine:
    """Random-weight decoder with a static cache; ``step()`` decodes one token per batch row in place."""

    def __init__(self, shape: tuple, batch: int, device: str, dtype, max_len: int = 512, seed: int = 0):
        d, n, f, h, v = shape
        self.d, self.n, self.f, self.h, self.hd, self.batch = d, n, f, h, d // h, batch
        g = torch.Generator(device).manual_seed(seed)
        rnd = lambda *s: torch.randn(*s, generator=g, device=device, dtype=torch.float32) / s[-1] ** 0.5  # noqa: E731
        self.emb = rnd(v, d) * d**0.5  # entries of unit size
        self.emb[:, 0] = d**0.5  # coordinate 0 of the residual stream: a constant (see the module doc)
        self.wqkv = [rnd(3 * d, d) for _ in range(n)]
        self.wo = [rnd(d, d) for _ in range(n)]
        self.wg = [rnd(f, d) for _ in range(n)]
        self.wu = [rnd(f, d) for _ in range(n)]
        self.wd = [rnd(d, f) for _ in range(n)]
        for w in self.wo + self.wd:
            w[0] = 0.0
        for w in self.wg:
            w[:, 0] = 0.0
        self.cut = [torch.zeros(f, device=device) for _ in range(n)]
        self.dtype, self.device = dtype, device
        self.kv = torch.zeros(n, 2, batch, h, max_len, self.hd, device=device, dtype=dtype)
        self.pos = torch.zeros(1, dtype=torch.long, device=device)
        self.first = torch.randint(1, v, (batch,), generator=g, device=device)
        self.ids = self.first.clone()
        self.ffn = self.dense_ffn
        self.parts = PARTS
        self.attention = cache_attention  # plain torch; on a GPU the one-launch Triton kernel
        if device == "cuda":  # needs Triton: imported on a GPU only
            from sparsing_lib.decode import attention

            self.attention = attention.cache_attention

    def calibrate(self, nonzero: list[float], kept: list[float], tokens: int = 64) -> None:
        """Set gate column 0 (a bias, times the constant coordinate) so that a fraction ``nonzero[l]`` of
        layer l's gates is positive, and the CETT cut so that ``kept[l]`` survives, on ``tokens`` tokens at
        position 0 (where attention returns the value vector)."""
        hs = self.emb[torch.randint(1, self.emb.shape[0], (tokens,), device=self.device)]
        for i in range(self.n):
            x = F.rms_norm(hs, (self.d,))
            hs = hs + (x @ self.wqkv[i][2 * self.d :].T) @ self.wo[i].T
            x = F.rms_norm(hs, (self.d,))
            gr = x @ self.wg[i].T
            self.wg[i][:, 0] = -torch.quantile(gr.flatten(), 1 - nonzero[i]) / x[:, 0].mean()
            a = F.relu(x @ self.wg[i].T) * (x @ self.wu[i].T)
            t = torch.quantile((a.abs() * self.wd[i].norm(dim=0)).flatten(), 1 - kept[i]) if kept[i] < nonzero[i] else 0
            self.cut[i] = bench.cuts(float(t), self.wd[i]).to(self.device)
            hs = hs + (a * (a.abs() >= self.cut[i])) @ self.wd[i].T

    def cast(self) -> None:
        """Weights to the engine's dtype after calibration (in float32); W_down also stored transposed."""
        for name in ("wqkv", "wo", "wg", "wu", "wd"):
            setattr(self, name, [w.to(self.dtype).contiguous() for w in getattr(self, name)])
        self.emb = self.emb.to(self.dtype)
        self.wdt = [w.T.contiguous() for w in self.wd]

    def dense_ffn(self, i: int, x: torch.Tensor, hs: torch.Tensor) -> torch.Tensor:
        """``hs`` plus the dense FFN of ``x`` (the residual add fused into the down product, as cuBLAS allows)."""
        return torch.addmm(hs, F.relu(F.linear(x, self.wg[i])) * F.linear(x, self.wu[i]), self.wd[i].T)

    def step(self) -> torch.Tensor:
        p = self.parts
        hs = self.emb[self.ids]
        for i in range(self.n):
            att = self.attention(F.linear(hs, self.wqkv[i]), hs, self.kv[i], self.pos, self.h)
            hs, x = p["attend"](att, hs, self.wo[i])
            hs = self.ffn(i, x, hs)
        self.ids.copy_(p["head"](hs, self.emb))
        self.pos.add_(1)
        return hs

    def reset(self) -> None:
        """Back to position 0 and the first tokens (the cache is overwritten as positions advance)."""
        self.pos.zero_()
        self.ids.copy_(self.first)

    def weight_bytes(self, candidate: list[float], kept: list[float]) -> float:
        """Bytes one step reads (weights only; the cache is small at these lengths): attention, the FFN's
        gate, candidate up rows and kept down rows, one embedding row per token and the tied output head."""
        per = 2 if self.dtype != torch.float32 else 4
        attn = 4 * self.d * self.d * per * self.n
        ffn = sum(self.d * self.f * per * (1 + c + k) for c, k in zip(candidate, kept))
        return attn + ffn + self.emb.numel() * per


STEP_TOLERANCE = 0.05  # relative error of a first step's hidden state against its reference (bf16 over a whole step)


def check_line(err: float, what: str) -> str:
    """The log line of a first-step check, in the form every decode benchmark prints its checks."""
    return f"  CHECK {'ok  ' if err < STEP_TOLERANCE else 'FAIL'} step-1 hidden state, {what}"


def skip_ffn(i: int, x: torch.Tensor, hs: torch.Tensor) -> torch.Tensor:
    """No FFN at all: a step with it times what both engines share, the parts outside the FFN (the FFN's input
    norm is still computed)."""
    return hs


def patterns(run: str, n: int) -> dict[str, tuple[list[float], list[float]]]:
    """Pattern name -> per-layer (non-zero fraction, kept fraction) of ``n`` layers from the ReLU run's last
    checkpoint."""
    r = bench.run_ratios(run)
    layers, nonzero = bench.stretch(r["layers"], n), bench.stretch(r["nonzero"], n)
    return {"active = CETT ratios": (layers, layers), "CETT cut on ReLU": (nonzero, layers)}


def first_of(eng: Engine, steps: int) -> torch.Tensor:
    """The hidden state after the first of ``steps`` eager steps (later tokens depend on argmax ties, so
    engines are compared on the first), then back to the start."""
    first = eng.step().clone()
    for _ in range(steps - 1):
        eng.step()
    eng.reset()
    return first


def measure(name: str, batch: int, pattern: str, args, log) -> dict:
    dtype = torch.bfloat16 if args.cuda else torch.float32
    dev = "cuda" if args.cuda else "cpu"
    eng = Engine(args.models[name], batch, dev, dtype)
    nonzero, kept = patterns(args.run, eng.n)[pattern]
    eng.calibrate(nonzero, kept)
    eng.cast()
    # activity actually reached, on a few eager steps: union over the batch of candidates and kept neurons
    cand_u, kept_u, ratio = [[] for _ in range(eng.n)], [[] for _ in range(eng.n)], []

    def watching(i, x, hs):
        y, keep = gather_ffn(
            x.double(), *(w.double() for w in (eng.wg[i], eng.wu[i], eng.wdt[i])), eng.cut[i].double(), "relu"
        )
        cand_u[i].append(float((F.relu(x @ eng.wg[i].T) > 0).any(0).float().mean()))
        kept_u[i].append(float(keep.any(0).float().mean()))
        ratio.append(float(keep.float().mean()))
        return hs + y.to(x.dtype)

    eng.ffn = watching
    ref_h = first_of(eng, 4).double().cpu()
    cand = [sum(c) / len(c) for c in cand_u]
    kept_union = [sum(c) / len(c) for c in kept_u]
    eng.ffn = eng.dense_ffn
    dense_h = first_of(eng, 1)
    if args.compile:
        eng.parts = compiled_parts(args.compile)
        compiled_h = first_of(eng, 1)
        err = bench.rel_error(compiled_h, dense_h.double().cpu())
        log(check_line(err, f"compiled dense engine vs eager: rel. error {err:.2e}"))
    eng.ffn = watching  # the CPU's sparse engine is the reference path
    if args.cuda:
        from sparsing_lib.decode import kernels as K

        ws = K.Workspace(eng.d, eng.f, eng.device)
        cfg = args.config[batch]
        eng.ffn = lambda i, x, hs: K.sparse_ffn(
            x.contiguous(), eng.wg[i], eng.wu[i], eng.wdt[i], eng.cut[i], "relu", ws, cfg, residual=hs
        )
    sparse_h = first_of(eng, 1)
    err = bench.rel_error(sparse_h, ref_h)
    log(check_line(err, f"sparse engine vs gather reference: rel. error {err:.2e} (dense engine vs reference "
                        f"{bench.rel_error(dense_h, ref_h):.2e})"))  # fmt: skip
    times = {}
    for mode, ffn in (("dense", eng.dense_ffn), ("sparse", eng.ffn), ("outside the FFN", skip_ffn)):
        eng.ffn = ffn
        times[mode] = bench.time_us(eng.step, args.steps, args.cuda)
        eng.reset()
    dense_b, sparse_b = eng.weight_bytes([1] * eng.n, [1] * eng.n), eng.weight_bytes(cand, kept_union)
    row = dict(level="model", model=name, shape=f"{name} model", pattern=pattern, activation="relu", batch=batch,
               run=args.run, engine=f"compiled ({args.compile})" if args.compile else "eager")  # fmt: skip
    row.update(activation_ratio=sum(ratio) / len(ratio), candidate_union=sum(cand) / eng.n,
               kept_union=sum(kept_union) / eng.n, check_rel_err=err)  # fmt: skip
    row.update(dense_us=times["dense"]["median_us"], sparse_us=times["sparse"]["median_us"])
    row["non_ffn_us"] = times["outside the FFN"]["median_us"]
    row["speedup"] = row["dense_us"] / row["sparse_us"]
    row["limit"] = dense_b / sparse_b
    row["dense_tokens_s"], row["sparse_tokens_s"] = batch * 1e6 / row["dense_us"], batch * 1e6 / row["sparse_us"]
    row["dense_limit_us"], row["sparse_limit_us"] = dense_b / args.copy_bw * 1e6, sparse_b / args.copy_bw * 1e6
    log(f"  dense {row['dense_tokens_s']:.0f} tok/s ({row['dense_us']:.0f} us/step), sparse "
        f"{row['sparse_tokens_s']:.0f} tok/s: {row['speedup']:.2f}x (limit {row['limit']:.2f}x); "
        f"ratio {row['activation_ratio']:.3f}")  # fmt: skip
    log(f"  outside the FFN (the step with its FFN calls skipped): {row['non_ffn_us']:.0f} us/step")
    return row


def tune(args, log) -> dict:
    """The fastest correct kernel config per batch, on the 2.4B FFN shape at the run's mean ratio."""
    from sparsing_lib.decode import kernels as K

    best = {}
    ratio = bench.run_ratios(args.run)["mean"]
    for batch in args.batches:
        x = torch.randn(batch, 2304, dtype=torch.float64, device="cuda")
        layers = [bench.controlled_layer(x, 5760, ratio, "relu", torch.bfloat16, seed=s) for s in range(2)]
        ws = K.Workspace(2304, 5760, "cuda")
        timed = []
        for c in bench.configs(batch):
            try:

                def run(c=c, layers=layers, ws=ws) -> list:
                    return [K.sparse_ffn(L["x"], L["wg"], L["wu"], L["wdt"], L["cut"], "relu", ws, c) for L in layers]

                if bench.checked_error(lambda run=run: run()[0], layers[0]["ref"]) < bench.TOLERANCE:
                    timed.append((bench.time_us(run, 50, True)["median_us"], c))
            except Exception as e:  # a config that fails is skipped
                log(f"  config {c} failed: {type(e).__name__}")
        best[batch] = min(timed, key=lambda t: t[0])[1] if timed else K.default_config(batch)
        log(f"# batch {batch}: kernel config {best[batch]}")
    return best


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--smoke", action="store_true", help="CPU reference path at toy size (tests the logic)")
    p.add_argument("--steps", type=int, default=None, help="timed decode steps (graph replays)")
    p.add_argument(
        "--compile",
        nargs="?",
        const="default",
        default=None,
        choices=COMPILE_MODES,
        help="torch.compile the non-FFN parts of a step in both engines (mode; default: off)",
    )
    p.add_argument("--batches", type=int, nargs="+", default=None, help="batches (default 1 8; CPU 1 2)")
    args = p.parse_args(argv)
    args.cuda = not args.smoke
    if args.cuda and not torch.cuda.is_available():
        p.error("no CUDA GPU: run with --smoke on a CPU")
    args.steps = args.steps or (200 if args.cuda else 2)
    args.batches = args.batches or ((1, 8) if args.cuda else (1, 2))
    args.out.mkdir(parents=True, exist_ok=True)
    log = bench.log_to(args.out / "decode_model.log")

    log(
        bench.header(
            "python " + " ".join(sys.argv if argv is None else ["benchmarks/decode_model.py", *argv]), args.cuda
        )
    )
    args.copy_bw = bench.copy_bandwidth(args.cuda)
    args.run = bench.largest_run("relu")
    args.models = models(args.run, args.cuda)
    log(f"# activation ratios of {args.run}; models (d, layers, d_ff, heads, vocabulary): {args.models}")
    log(f"# non-FFN parts of a step: {'torch.compile, mode ' + args.compile if args.compile else 'eager'}")
    args.config = tune(args, log) if args.cuda else {}
    rows = []
    for name in args.models:
        for pattern in patterns(args.run, args.models[name][1]):
            for batch in args.batches:
                log(f"{name} {pattern} batch {batch}")
                try:
                    rows.append(measure(name, batch, pattern, args, log))
                except Exception as e:  # one failing case must not lose the others
                    log(f"  FAILED: {type(e).__name__}: {e}")
                gc.collect()  # the engine and its FFN closures form a cycle: free its weights now
                torch.cuda.empty_cache() if args.cuda else None
                df = pd.DataFrame(rows)  # written after every case: a run cut short keeps what it measured
                df.to_csv(args.out / "decode_model.csv", index=False)
                bench.write_summary(args.out)
    return df


if __name__ == "__main__":
    main()
