#!/bin/sh
# Train under Slurm: tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]
# Environment: GPUS (total tasks, default 8), GPUS_PER_NODE (8; 0 on a CPU-only cluster: no
# --gres and Slurm places the tasks), CPUS_PER_TASK (5), SRUN_ARGS (extra srun arguments),
# MASTER_PORT (29500; the rendezvous port on the first node, read by the slurm launcher).
set -eu
if [ $# -lt 4 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ "$GPUS_PER_NODE" -gt 0 ]; then
    TASKS_PER_NODE=$(( GPUS < GPUS_PER_NODE ? GPUS : GPUS_PER_NODE ))
    PLACEMENT="--gres=gpu:${TASKS_PER_NODE} --ntasks-per-node=${TASKS_PER_NODE}"
else
    PLACEMENT=""
fi

# shellcheck disable=SC2086  (PLACEMENT and SRUN_ARGS are split on purpose)
PYTHONPATH="$ROOT:${PYTHONPATH:-}" exec srun -p "$PARTITION" \
    --job-name="$JOB_NAME" $PLACEMENT --ntasks="$GPUS" \
    --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 $SRUN_ARGS \
    python -u "$ROOT/tools/train.py" "$CONFIG" --work-dir="$WORK_DIR" --launcher=slurm "$@"
