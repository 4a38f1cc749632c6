#!/usr/bin/env bash
# Everything the decoding chapter measures, on one H200 (about 3 minutes), written under $1 (default $OUT):
#   SPARSING_GIT_REV=<rev> bash benchmarks/decode_all.sh
# The GPU tests of the kernels run first (their result is printed, a failure does not stop the benchmarks,
# which check every kernel configuration against a float64 reference before timing it).
out="${1:-$OUT}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv > "$out/decode_hardware.txt" 2>&1
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" >> "$out/decode_hardware.txt"
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/test_decode.py -k "gpu" 2>&1 | tail -15 | tee "$out/decode_tests.log"
timeout 240 python3 benchmarks/decode_ffn.py --out "$out" 2>&1 | tail -400 > "$out/decode_ffn.stdout"
tail -30 "$out/decode_ffn.stdout"
timeout 140 python3 benchmarks/decode_model.py --out "$out" 2>&1 | tail -200 > "$out/decode_model.stdout"
tail -40 "$out/decode_model.stdout"
python3 -c "import pandas as pd; print(pd.read_csv('$out/decode_summary.csv').to_string(index=False))"
# Optional (DECODE_COMPILE=1; a few minutes more, mostly torch.compile's own compilation): the model benchmark at
# batch 1 with the non-FFN parts of both engines compiled, under $out/compiled (its own CSV, log and summary),
# copied next to the others as decode_model_compiled.csv/.log and decode_summary_compiled.csv, the names the
# chapter reads once committed.
if [ -n "$DECODE_COMPILE" ]; then
  timeout 300 python3 benchmarks/decode_model.py --compile --batches 1 --out "$out/compiled" 2>&1 | tail -200 > "$out/compiled.stdout"
  tail -20 "$out/compiled.stdout"
  for f in decode_model.csv decode_model.log decode_summary.csv; do
    [ -f "$out/compiled/$f" ] && cp "$out/compiled/$f" "$out/${f%.*}_compiled.${f##*.}"
  done
fi
