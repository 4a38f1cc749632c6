#!/usr/bin/env bash
# The downstream evaluation of the two largest scale minis on a two-GPU H200, in calls of at most ~9.5 minutes;
# run the same command again on the still-warm machine to go on (state under .scratch/eval):
#
#   SPARSING_GIT_REV=<rev> bash benchmarks/eval_gpu.sh          # carry .corpus and .evaldata with the first call
#
# Parts, each skipped once done:
#   1. train mini-336x7-relu and mini-336x7-silu (grid "scales"), one per GPU, resumable, probes at the end
#      (about 490 s of training and 90 s of probes: the first call pauses them, the second finishes)
#   2. the suite on each last checkpoint, one per GPU: every task dense and at CETT-PPL-1/5/10 %, then
#      Fig. 3's sweeps (suite.evaluate_runs); eval.json records the seconds of every task and setting
#   3. each last checkpoint exported as a float16 model folder (sparsing_lib.checkpoints), packed in 15 MB
#      parts, so that later evaluations need no retraining: cat <run>.model.tar.part-* | tar -x
# $OUT (at most 8 files): runs.tar.gz (run folders without checkpoints, and every log), the model parts
# (two per run, from the call that exported them) and eval_gpu.log.
#
# To evaluate runs trained on an earlier machine without training them again, put their model parts under
# .scratch/models/ and their run folders under .scratch/eval/runs/, and carry them (with .corpus, whose
# validation split calibrates the thresholds, and .evaldata) over as many calls as the carry limit needs:
# a run whose parts are all there is unpacked into $W/models and evaluated from that folder.
set -euo pipefail
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"  # settings differ in shapes
PY="${PYTHON:-python3}"
OUT="${OUT:-/tmp/eval_gpu_out}"
W="${WORK:-.scratch/eval}"
BUDGET="${BUDGET:-540}"  # seconds of work in this call; the rest packs the results
RUNS=(mini-336x7-relu mini-336x7-silu)
mkdir -p "$OUT" "$W/logs"
source "$(dirname "$0")/call_clock.sh" "$OUT/eval_gpu.log"
[[ -n "${SPARSING_GIT_REV:-}" ]] || echo "warning: SPARSING_GIT_REV is not set; the records will say 'unknown'"
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
stamp "${#RUNS[@]} runs, $GPUS GPU(s), budget $BUDGET s, work $W, results $OUT"
(( GPUS >= 2 )) || { echo "needs two GPUs (one run per GPU)" >&2; exit 2; }

if [[ ! -d "$W/evaldata" ]]; then
  [[ -f .evaldata/evaldata.tar.xz ]] || { echo "no .evaldata/evaldata.tar.xz (carry it with the first call)" >&2; exit 2; }
  mkdir -p "$W/evaldata" && tar -xJf .evaldata/evaldata.tar.xz -C "$W/evaldata" --strip-components 1
fi
export SPARSING_EVAL_DATA="$PWD/$W/evaldata"
"$PY" -m sparsing_lib.evaluation.data verify >/dev/null || { echo "benchmark files fail their hashes" >&2; exit 2; }

# 0. model folders exported on an earlier machine (an incomplete set of parts fails tar and is left for later)
for run in "${RUNS[@]}"; do
  parts=(.scratch/models/"$run".model.tar.part-*)
  [[ -f "$W/models/$run/config.json" || ! -f "${parts[0]}" ]] && continue
  mkdir -p "$W/models"
  if cat "${parts[@]}" | tar -x -C "$W/models" 2>/dev/null; then stamp "staged $run from ${#parts[@]} part(s)"
  else rm -rf "${W:?}/models/$run"; stamp "$run: its parts are incomplete so far"; fi
done

trained() {  # every run's env.json says done
  "$PY" - "$W/runs" "${RUNS[@]}" <<'EOF'
import json, sys
from pathlib import Path
ok = all((Path(sys.argv[1]) / r / "env.json").exists()
         and json.loads((Path(sys.argv[1]) / r / "env.json").read_text()).get("status") == "done" for r in sys.argv[2:])
sys.exit(0 if ok else 1)
EOF
}

# 1. training (and the probes), one run per GPU
if trained; then stamp "train: done in an earlier call"
else
  [[ -f .corpus/index.json ]] || { echo "no corpus at .corpus (carry it with the first call)" >&2; exit 2; }
  TRAIN_S=$(($(left) - 100))
  stamp "train: ${TRAIN_S} s of training, then probes or a pause"
  timeout $(($(left) - 15)) "$PY" -m sparsing_lib.run --grid scales --slice "$(IFS=,; echo "${RUNS[*]}")" --gpus 2 \
    --per-gpu 1 --profile full --corpus full --device cuda --time-limit "$TRAIN_S" --out "$W/runs" --ckpt "$W/ckpt" \
    || stamp "train: paused or cut (run the script again)"
fi

# 2. the suite, one run per GPU
if trained && (($(left) > 60)); then
  pids=()
  for i in "${!RUNS[@]}"; do
    run=${RUNS[$i]}
    if [[ -f "$W/runs/$run/eval_fig3/eval.csv" ]]; then stamp "eval $run: done in an earlier call"; continue; fi
    root="$W/ckpt"; [[ -f "$W/models/$run/config.json" ]] && root="$W/models"  # the exported folder if there is one
    stamp "eval $run on GPU $i from $root"
    CUDA_VISIBLE_DEVICES=$i timeout $(($(left) - 10)) "$PY" -c "from sparsing_lib.evaluation.suite import evaluate_runs; \
evaluate_runs('$W/runs', ['$run'], '$root', 'cuda')" > "$W/logs/eval_$run.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || stamp "eval: a run failed or was cut (see $W/logs)"; done
  for run in "${RUNS[@]}"; do tail -n 3 "$W/logs/eval_$run.log" 2>/dev/null || true; done
fi

# 3. export the last checkpoints (packed into $OUT by the call that exports them)
if trained; then
  for run in "${RUNS[@]}"; do
    [[ -f "$W/models/$run/config.json" ]] && continue
    ckpt=$(ls "$W/ckpt/$run"/step_*.pt | tail -n 1)
    "$PY" -m sparsing_lib.checkpoints --ckpt "$ckpt" --run "$W/runs/$run" --out "$W/models/$run"
    tar -cf - -C "$W/models" "$run" | split -b 15M - "$OUT/$run.model.tar.part-"
  done
fi

packed=(runs logs); [[ -d "$W/ckpt/logs" ]] && packed+=(ckpt/logs)  # training logs, without the checkpoints
tar -czf "$OUT/runs.tar.gz" --exclude=.parts -C "$W" "${packed[@]}"  # stored suite parts stay with the checkpoints
stamp "finished; $OUT holds: $(ls "$OUT" | tr '\n' ' ')"
