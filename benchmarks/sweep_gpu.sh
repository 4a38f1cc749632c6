#!/usr/bin/env bash
# The final sweep (GRIDS["sweep"] in sparsing_lib/run.py) on a two-GPU H200, one slice at a time, in calls of at
# most ~9.5 minutes; run the same command again on the still-warm machine to go on (state under .scratch/sweep):
#
#   SPARSING_GIT_REV=<rev> bash benchmarks/sweep_gpu.sh <slice>     # slice: as run.py's --slice (0:10, or names)
#   PER_GPU=1 K_EVAL=2 SPARSING_GIT_REV=<rev> bash benchmarks/sweep_gpu.sh mini-512x10-relu,mini-512x10-silu
#   PER_GPU=1 MARGIN=200 SPARSING_GIT_REV=<rev> bash benchmarks/sweep_gpu.sh recipe-448x13-relu   # Fig. 11's run:
#     about 20 minutes of training over three calls, 3 of probes, 7 of evaluation (data/benchmarks/throughput_README.md)
#   PROFILE=smoke bash benchmarks/sweep_gpu.sh all                 # CPU: the same steps on the smoke grid
#
# The first call carries .corpus and .evaldata; they are copied to $STAGE (/tmp/stage), because a later call that
# names another carry list removes them from the checkout; a call that finds them missing links them back. When the
# repository and both no longer fit the 64 MiB a call carries, a first short call carries .corpus alone and only
# stages it, and the sweep's calls carry .evaldata:
#
#   bash benchmarks/sweep_gpu.sh stage                             # carry .corpus: copies it to $STAGE, nothing else
# Parts of each call (benchmarks/sweep_gpu.py), each a no-op once done:
#   1. train the slice's unfinished runs, PER_GPU (default 2) per GPU, probes included; every run pauses (or is
#      probed) by one common deadline, and is resumed by the next call
#   2. evaluate every finished run of the slice that lacks its evaluation (suite.evaluate_runs), K_EVAL (default 2)
#      per GPU: every task dense and at CETT-PPL-1/5/10 % (MoE runs included), and Fig. 3's sweeps for the plain
#      dense scale runs. An evaluation needing under EVAL_MIN_S seconds left does not start; one stopped at the
#      deadline keeps each finished task and setting (evaluation.parts) and the next call goes on from there.
#   3. export every trained run still to evaluate (at most EXPORT_MAX, default 3, per call; once per run): its
#      last checkpoint as a float16 model folder, packed in 15 MB parts into $OUT (sweep_gpu.py export)
# $OUT: runs.tar.gz (run folders without checkpoints, with every training and evaluation log), sweep_gpu.log and
# the parts of the runs exported by this call (two per mini-320x6 run).
#
# Checkpoints stay on the machine, and a machine left idle for about 30 s between calls is given back with them.
# A run paused mid-training is then trained again from the start (do not carry its old run folder there). A run
# that finished training was exported by the call that finished it, so a fresh machine evaluates it instead: put
# its parts and its run folder (from that call's runs.tar.gz) under $CARRY (default .scratch/carry: parts in it,
# the run folder as $CARRY/runs/<run>) and carry that path with the call; a complete set is unpacked into $W/models
# and the run is evaluated from there (sweep_gpu.py unpack). Two parts fit one call beside .evaldata; a run of more
# parts (mini-512x10, the recipe-validation run) is carried two parts a call, as what each call carried is kept on
# the machine ($W/carry) until its set is complete.
set -euo pipefail
SLICE="${1:?usage: bash benchmarks/sweep_gpu.sh <slice> (as sparsing_lib.run --slice: a:b or names)}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"
PY="${PYTHON:-python3}"
OUT="${OUT:-/tmp/sweep_gpu_out}"
W="${WORK:-.scratch/sweep}"
STAGE="${STAGE:-/tmp/stage}"
PER_GPU="${PER_GPU:-2}"
K_EVAL="${K_EVAL:-2}"  # three suites on one H200 each went far slower than two (sweep_s8)
CARRY="${CARRY:-.scratch/carry}"
mkdir -p "$OUT" "$W"
source "$(dirname "$0")/call_clock.sh" "$OUT/sweep_gpu.log"

GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
PROFILE="${PROFILE:-$( ((GPUS > 0)) && echo full || echo smoke)}"
if [[ "$PROFILE" == full ]]; then
  BUDGET="${BUDGET:-540}"  # seconds of work in this call; the rest packs the results
  GRID=sweep; COMMON=(--profile full --corpus full); DEVICE=cuda; SMOKE=()
  MARGIN="${MARGIN:-200}"  # the probes of a run that has just finished: up to about 170 s at mini-512x10 (sweep_s1)
  EVAL_MIN_S="${EVAL_MIN_S:-60}"  # a suite stopped at the deadline keeps its finished parts and resumes from them
  [[ -n "${SPARSING_GIT_REV:-}" ]] || echo "warning: SPARSING_GIT_REV is not set; the records will say 'unknown'"
  ((GPUS >= 1)) || { echo "PROFILE=full needs a GPU" >&2; exit 2; }
elif [[ "$PROFILE" == smoke ]]; then
  BUDGET="${BUDGET:-600}"  # a busy 2-core CPU
  GRID=smoke; COMMON=(--profile smoke --corpus smoke); DEVICE=cpu; SMOKE=(--smoke)
  GPUS=2  # CUDA_VISIBLE_DEVICES is set but unused on CPU: the placement logic is what is tested
  MARGIN="${MARGIN:-90}"; EVAL_MIN_S="${EVAL_MIN_S:-20}"
  export SPARSING_CORPUS="$PWD/data/corpus/smoke"  # the smoke evaluation calibrates on the committed slice
else echo "PROFILE must be full or smoke, not $PROFILE" >&2; exit 2; fi
DEADLINE=$((T0 + BUDGET))
stamp "profile $PROFILE, slice $SLICE of grid $GRID, $GPUS GPU(s), $PER_GPU training and $K_EVAL evaluations per GPU, budget $BUDGET s, work $W"

# 0. data: copy what this call carried to $STAGE once; link back what a later call's carry list removed
stage() {  # stage <path>: 0 if the path is there (carried or linked back), 1 if neither here nor staged
  local p=$1
  if [[ -e "$p" && ! -L "$p" && ! -f "$STAGE/$p.done" ]]; then
    mkdir -p "$STAGE" && rm -rf "${STAGE:?}/$p" && cp -a "$p" "$STAGE/$p" && touch "$STAGE/$p.done"
    stamp "staged $p in $STAGE"
  elif [[ ! -e "$p" && -f "$STAGE/$p.done" ]]; then
    rm -f "$p" && ln -s "$STAGE/$p" "$p" && stamp "linked $p back from $STAGE"
  fi
  [[ -e "$p" ]]
}
if [[ "$SLICE" == stage ]]; then  # the short first call above: stage what it carried, nothing else
  for p in .corpus .evaldata; do stage "$p" || stamp "$p: neither carried nor staged"; done
  stamp "finished: staging only"
  exit 0
fi
if [[ "$PROFILE" == full ]]; then
  stage .corpus || { echo "no .corpus here or in $STAGE (carry it with the first call)" >&2; exit 2; }
  if [[ ! -f "$W/evaldata.done" ]]; then
    stage .evaldata || { echo "no .evaldata here or in $STAGE (carry it with the first call)" >&2; exit 2; }
    rm -rf "$W/evaldata" && mkdir -p "$W/evaldata"
    tar -xJf .evaldata/evaldata.tar.xz -C "$W/evaldata" --strip-components 1 && touch "$W/evaldata.done"
  fi
  export SPARSING_EVAL_DATA="$PWD/$W/evaldata"
  "$PY" -m sparsing_lib.evaluation.data verify >/dev/null || { echo "benchmark files fail their hashes" >&2; exit 2; }
fi
# runs exported by an earlier machine are evaluated here instead of trained again. Each call's carry list replaces
# the last one's, so what a call carried is kept under $W/carry: a model of more parts than fit one call (beside
# .evaldata, two of 15 MB) arrives over several calls and is unpacked once its set is complete
if [[ -d "$CARRY" ]]; then mkdir -p "$W/carry" && cp -a "$CARRY/." "$W/carry/"; fi
if [[ -d "$W/carry" ]]; then
  "$PY" benchmarks/sweep_gpu.py unpack --carry "$W/carry" --models "$W/models" --out "$W/runs"
fi

# 1. training (and probes) by the deadline minus the margin
if (($(left) <= MARGIN)); then
  stamp "train: $(left) s left, within the margin of $MARGIN s: the next call trains"
else
  stamp "train: until $((BUDGET - MARGIN)) s, probes or pauses in the last $MARGIN s"
  timeout $(($(left) + 5)) "$PY" benchmarks/sweep_gpu.py train --deadline "$DEADLINE" --margin "$MARGIN" --gpus "$GPUS" \
    --per-gpu "$PER_GPU" -- --grid "$GRID" --slice "$SLICE" "${COMMON[@]}" --device "$DEVICE" --out "$W/runs" \
    --ckpt "$W/ckpt" || stamp "train: a run failed or was cut (see $W/ckpt/logs)"
fi

# 2. evaluation of the finished runs with the time left; none starts under EVAL_MIN_S (checked here as well as in
# each worker: a worker's own imports can outlast a few seconds' timeout, which would read as a failed run)
if (($(left) < EVAL_MIN_S)); then
  stamp "eval: $(left) s left, under EVAL_MIN_S=$EVAL_MIN_S: the next call evaluates"
else
  stamp "eval: $(left) s left"
  timeout $(($(left) + 5)) "$PY" benchmarks/sweep_gpu.py eval --deadline "$DEADLINE" --min-seconds "$EVAL_MIN_S" \
    --gpus "$GPUS" --per-gpu "$K_EVAL" --grid "$GRID" --slice "$SLICE" --out "$W/runs" --ckpt "$W/ckpt" \
    --device "$DEVICE" --models "$W/models" "${SMOKE[@]}" || stamp "eval: a run failed (see $W/ckpt/logs/eval)"
fi

# 3. the trained runs still to evaluate leave the machine as model parts, in case it is given back
"$PY" benchmarks/sweep_gpu.py export --out "$W/runs" --ckpt "$W/ckpt" --models "$W/models" --dest "$OUT" \
  --grid "$GRID" --slice "$SLICE" --limit "${EXPORT_MAX:-3}" || stamp "export: failed (the runs stay on this machine)"

packed=(runs); [[ -d "$W/ckpt/logs" ]] && packed+=(ckpt/logs)  # every log, without the checkpoints
[[ -d "$W/runs" ]] && tar -czf "$OUT/runs.tar.gz" --exclude=.parts -C "$W" "${packed[@]}"  # stored suite parts stay: they fit only this machine's checkpoints
stamp "finished; $OUT holds: $(ls "$OUT" | tr '\n' ' ')"
