# Sourced by the scripts that run as timed calls on a GPU machine (eval_gpu.sh, trainer_v2_gpu.sh, sweep_gpu.sh):
# the call's clock, its log ($1, a file under $OUT, which must exist) and the two helpers every part uses:
# left (seconds of BUDGET still free; BUDGET is read when it is called) and stamp (a line with the elapsed time).
T0=$(date +%s)
exec > >(tee -a "$1") 2>&1
left() { echo $((BUDGET - ($(date +%s) - T0))); }
stamp() { echo "[$(($(date +%s) - T0)) s] $*"; }
