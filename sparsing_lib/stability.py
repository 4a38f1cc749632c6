"""The stability rule and its verdict on any run: whether its validation loss stays near its running minimum.

The rule (trainer v2, set by the pilot study, ``pilots``): after warm-up, the validation loss never rises more
than ``STABLE_RISE`` nats above its running minimum. Every run is judged after its own warm-up, read from the
recipe it recorded (``train_config.recorded_config``). ``runs.run_folders`` leaves unstable runs out of what the
chapters see, and the training-dynamics chapter reports each run's verdict, so none is dropped silently. A rise
that lasts while the training loss goes on falling is overfitting, not instability (``overfit``: many passes over
a small share of the split do this), and such a run is kept under its own verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .train_config import recorded_config

STABLE_RISE = 0.05  # the rule: validation loss never more than this above its running minimum after warm-up
VERDICTS = ("stable", "overfit", "unstable", "not judged")


def stable(metrics: pd.DataFrame, after_warmup: int) -> tuple[bool, float]:
    """Whether the validation loss of ``metrics`` (rows with ``step`` and ``val_loss``; NaN where not measured)
    never rises more than ``STABLE_RISE`` above its running minimum from step ``after_warmup`` on; and the
    largest such rise. A loss that is not finite counts as an unbounded rise."""
    val = metrics.loc[metrics["step"] >= after_warmup, "val_loss"].dropna().to_numpy(float)
    if len(val) == 0:
        raise ValueError(f"no validation loss at or after step {after_warmup}")
    if not np.isfinite(val).all():
        return False, float("inf")
    rise = float(np.max(val - np.minimum.accumulate(val)))
    return rise <= STABLE_RISE + 1e-9, rise  # a rise of exactly 0.05 passes despite rounding


def overfit(metrics: pd.DataFrame, after_warmup: int) -> bool:
    """Whether a rise of the validation loss after step ``after_warmup`` is overfitting: it lasts (the last
    validation loss is more than ``STABLE_RISE`` above the best, so not a spike the run recovered from) while the
    training loss ends more than ``STABLE_RISE`` below its level at the best step (the model keeps improving on
    the text it trains on). Training losses are averaged over a tenth of the logged steps, as one batch's is noisy."""
    m = metrics[metrics["step"] >= after_warmup]
    val, train = m.dropna(subset=["val_loss"]), m.dropna(subset=["train_loss"])
    if val.empty or train.empty:
        return False
    best = val.loc[val["val_loss"].idxmin()]
    n = max(1, len(train) // 10)
    at_best = train.loc[train["step"] <= best["step"], "train_loss"].tail(n).mean()  # NaN (False) if none before
    lasting = val["val_loss"].iloc[-1] - best["val_loss"] > STABLE_RISE
    return bool(lasting and train["train_loss"].tail(n).mean() < at_best - STABLE_RISE)


@dataclass(frozen=True)
class Stability:
    """A run's verdict (one of ``VERDICTS``), its largest rise after warm-up in nats (NaN when not judged,
    inf when a loss is not finite), the warm-up it was judged after (None when unrecorded) and why, in words."""

    verdict: str
    rise: float
    warmup_steps: int | None
    reason: str

    @property
    def excluded(self) -> bool:
        """Whether the analyses leave the run out: only a run judged unstable is."""
        return self.verdict == "unstable"


def run_stability(run: dict) -> Stability:
    """The rule's verdict on a run (``config`` and ``metrics`` as ``runs.load_run`` gives them; ``env`` if any).

    A run the trainer stopped as diverged (``env`` status ``diverged``), or whose training loss is not finite, is
    unstable whatever its validation losses show: the trainer stops such a run before measuring one at that step.
    A run with no validation loss after its warm-up, or no recorded recipe (with its ``tokens``) to read its
    warm-up from, is **not judged** and kept: the rule speaks only of losses after warm-up, so such a run (one
    still warming up, say) has shown no sign of instability, and leaving it out would hide runs in progress. A NaN
    validation loss reads as "not measured" (metrics.csv writes unmeasured steps as empty), so it is skipped."""
    m = run["metrics"]
    train = run["config"].get("train")
    warmup = recorded_config(train).warmup_steps if train and "tokens" in train else None  # warm-up needs tokens
    measured = warmup is not None and "val_loss" in m and m.loc[m["step"] >= warmup, "val_loss"].notna().any()
    ok, rise = stable(m, warmup) if measured else (None, float("nan"))
    losses = m["train_loss"].to_numpy(float) if "train_loss" in m else np.array([])
    diverged = run.get("env", {}).get("status") == "diverged" or not np.isfinite(losses).all()
    if diverged:
        return Stability("unstable", rise, warmup, "training diverged")
    if ok is None:
        why = "no recorded recipe" if warmup is None else f"no validation loss after warm-up (step {warmup})"
        return Stability("not judged", rise, warmup, why)
    if not ok and overfit(m, warmup):
        return Stability(
            "overfit", rise, warmup, f"validation loss {rise:.3f} nats above its best as the training loss falls"
        )
    return Stability("stable" if ok else "unstable", rise, warmup, f"largest rise {rise:.3f} nats after step {warmup}")


def verdict_sentence(verdicts: dict[str, Stability]) -> str:
    """What the rule found among runs (``run_stability`` by run name), for a chapter's prose: the runs that break
    it and are left out, and those that overfit and are kept, named with their rises; the largest rise of the
    stable rest. Runs that could not be judged are counted, since they are kept without a verdict."""
    judged = {n: v for n, v in verdicts.items() if v.verdict != "not judged"}
    if not judged:
        return "no run has a validation loss after its warm-up, so none could be judged"
    by = {w: {n: v for n, v in judged.items() if v.verdict == w} for w in ("unstable", "overfit", "stable")}
    said = []
    if bad := by["unstable"]:
        verb = "breaks the rule and is" if len(bad) == 1 else "break the rule and are"
        said.append(f"{len(bad)} of {len(judged)} judged runs {verb} left out of every analysis: {_named(bad)}")
    if over := by["overfit"]:
        verb = (
            "overfits, which is no instability, and is"
            if len(over) == 1
            else "overfit, which is no instability, and are"
        )
        said.append(f"{len(over)} of {len(judged)} {verb} kept: {_named(over)}")
    if ok := by["stable"]:
        top = max(v.rise for v in ok.values())
        who = (
            f"all {len(ok)} runs are"
            if len(ok) == len(judged)
            else f"the other {len(ok)} " + ("is" if len(ok) == 1 else "are")
        )
        said.append(f"{who} stable by the rule: the largest rise is {top:.3f} nats")
    unjudged = len(verdicts) - len(judged)
    if unjudged:
        said.append(
            f"{unjudged} more could not be judged and {'is' if unjudged == 1 else 'are'} kept without a verdict"
        )
    return "; ".join(said)


def _named(verdicts: dict[str, Stability]) -> str:
    return ", ".join(f"{n} ({v.reason})" for n, v in verdicts.items())
