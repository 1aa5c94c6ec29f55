#!/usr/bin/env bash
# Download the wheels that the GPU machine lacks, here, where PyPI is reachable.
#
#   benchmarks/gpu/prepare.sh [WHEEL_DIR]        (default: .whl in the checkout's root)
#
# Fetches the exact versions of benchmarks/gpu/wheels.txt without their dependencies, as wheels
# for CPython 3.12 on x86-64 Linux (the GPU machine's Python; PY_VERSION overrides it). A package
# that PyPI has only as a source archive is built into a wheel here, which must then be pure Python
# (a compiled one would be built for this machine's Python). WHEEL_DIR is replaced as a whole, so
# it holds exactly one version of each. Ends with the wheels' size and the size of everything that
# travels to the GPU machine (tracked and untracked-not-ignored files plus WHEEL_DIR; 64 MiB at
# most). benchmarks/gpu/run.sh installs them there.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
DEST=${1:-.whl}
PYTHON=${PYTHON:-python3}
PY_VERSION=${PY_VERSION:-3.12}
LIMIT=$((64 * 1024 * 1024))
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64
    manylinux2014_x86_64 manylinux1_x86_64)

mapfile -t PINS < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' benchmarks/gpu/wheels.txt | grep .)
TMP=$(mktemp -d "${DEST%/}.tmp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

for pin in "${PINS[@]}"; do
    if ! "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
        --python-version "$PY_VERSION" --implementation cp "${PLATFORMS[@]/#/--platform=}" \
        -d "$TMP" "$pin"; then
        echo "prepare: no wheel of $pin for CPython $PY_VERSION; building one from its source" >&2
        "$PYTHON" -m pip wheel --quiet --no-deps -w "$TMP" "$pin"
    fi
done
for wheel in "$TMP"/*.whl; do
    case "$wheel" in
        *-none-any.whl | *-cp"${PY_VERSION/./}"-*.whl | *-abi3-*.whl) ;;
        *)
            echo "prepare: $(basename "$wheel") does not run on CPython $PY_VERSION;" \
                "pin another version in benchmarks/gpu/wheels.txt" >&2
            exit 1
            ;;
    esac
done
found=$(find "$TMP" -name '*.whl' | wc -l)
if [ "$found" -ne "${#PINS[@]}" ]; then
    echo "prepare: ${#PINS[@]} pins in benchmarks/gpu/wheels.txt but $found wheels" >&2
    exit 1
fi
rm -rf "$DEST"
mv "$TMP" "$DEST"
trap - EXIT

ls -l "$DEST"
wheels=$(du -cb "$DEST"/*.whl | tail -n 1 | cut -f 1)
tree=$(git ls-files -z --cached --others --exclude-standard \
    | { xargs -0 stat -c %s 2>/dev/null || true; } | awk '{ total += $1 } END { print total + 0 }')
travels=$((wheels + tree))
echo "prepare: ${#PINS[@]} wheels, $((wheels / 1024)) KiB, in $DEST"
echo "prepare: the working tree and the wheels travel as $((travels / 1024)) KiB" \
    "(limit $((LIMIT / 1024)) KiB)"
if [ "$travels" -gt "$LIMIT" ]; then
    echo "prepare: over the limit: ignore or remove large untracked files" >&2
    exit 1
fi
