#!/usr/bin/env bash
# The GPU check on a machine without internet: install the wheels that prepare.sh downloaded, then
# build, test and measure (python -m benchmarks.gpu.check; about 7 minutes on one H200).
#
#   benchmarks/gpu/run.sh [OUT_DIR] [check.py options]
#
# OUT_DIR defaults to $OUT, else work_dirs/gpu_check; it receives gpu_check.json, gpu_check.md,
# run.log (this script's output), build.log and tests.log. The wheels (WHEELS, default .whl) go
# into SITE (default /tmp/polarmask-site) on PYTHONPATH, without their dependencies, so the
# machine's own torch is used and nothing of its Python is changed; without wheels the packages
# must already be installed. PYTHON selects the interpreter (default python3).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT_DIR=${OUT:-work_dirs/gpu_check}
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    OUT_DIR=$1
    shift
fi
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
SITE=${SITE:-/tmp/polarmask-site}
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1

{
    if compgen -G "$WHEELS/*.whl" >/dev/null; then
        echo "[run] installing $(ls "$WHEELS"/*.whl | wc -l) wheels from $WHEELS into $SITE"
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$SITE" "$WHEELS"/*.whl || exit 1
        export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    else
        echo "[run] no wheels in $WHEELS: using the packages installed for $PYTHON"
    fi
    "$PYTHON" -m benchmarks.gpu.check --out "$OUT_DIR" "$@"
} 2>&1 | tee "$OUT_DIR/run.log"
