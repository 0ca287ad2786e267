#!/usr/bin/env bash
# Make the failure-catalog table for every TensorFlow version of the asv matrix.
#
#   scripts/catalog_all_tf.sh [VERSION ...]     (default: 2.17.1 2.19.1 2.21.0)
#
# Each version runs `ckpt-harness catalog` with the harness from this checkout
# (via PYTHONPATH) under a Python that has tensorflow-cpu==VERSION, then keeps:
#   results/catalog/tf-VERSION.csv   the table (its `commit` column names the commit that made it)
#   results/catalog/tf-VERSION.txt   the terminal output (its first line names the commit too)
# Commit first: a table made from a tree with uncommitted changes says <hash>-dirty.
#
# Which Python runs a version:
#   - $PYTHON (default python3) itself, when its TensorFlow is already VERSION;
#   - else $VENV_DIR/tf-VERSION, made on first use with `pip install tensorflow-cpu==VERSION`
#     (about 1-2 min per version with a warm pip cache) and reused by later runs;
#     without VENV_DIR the venvs go in a throwaway directory removed on exit.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$repo/results/catalog"
python="${PYTHON:-python3}"
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(2.17.1 2.19.1 2.21.0)

logs="$(mktemp -d /tmp/ckpt-catalog-tf.XXXXXX)"
venvs="${VENV_DIR:-$logs/venvs}"
cleanup() { rm -rf "$logs"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# the TensorFlow version a Python has (package metadata, no import), or nothing
tf_version_of() {
    "$1" - <<'EOF' 2>/dev/null || true
from importlib import metadata
for dist in ("tensorflow-cpu", "tensorflow"):
    try:
        print(metadata.version(dist))
        break
    except metadata.PackageNotFoundError:
        pass
EOF
}

commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
git -C "$repo" --no-optional-locks diff --quiet HEAD -- 2>/dev/null || commit="$commit-dirty"
echo "harness commit $commit" >&2

mkdir -p "$out"
status=0
all_start=$(date +%s)
for v in "${versions[@]}"; do
    echo "== tensorflow-cpu $v" >&2
    start=$(date +%s)
    if [ "$(tf_version_of "$python")" = "$v" ]; then
        py="$python"
        echo "   using $python as is" >&2
    else
        venv="$venvs/tf-$v"
        py="$venv/bin/python"
        if [ "$(tf_version_of "$py")" != "$v" ]; then
            mkdir -p "$venvs"
            rm -rf "$venv"
            "$python" -m venv "$venv"
            if ! "$py" -m pip install --quiet --disable-pip-version-check "tensorflow-cpu==$v" \
                    >"$logs/pip-$v.log" 2>&1; then
                echo "   install failed, see below; skipping $v" >&2
                tail -5 "$logs/pip-$v.log" >&2
                status=1
                continue
            fi
            echo "   installed in $venv in $(( $(date +%s) - start )) s" >&2
        else
            echo "   reusing $venv" >&2
        fi
    fi
    runs="$logs/runs-$v"
    rc=0
    run_start=$(date +%s)
    ( cd "$repo" && PYTHONPATH="$repo" TF_CPP_MIN_LOG_LEVEL=2 \
        "$py" -m harness catalog --out "$runs" ) >"$logs/out-$v.txt" 2>"$logs/err-$v.txt" || rc=$?
    csv="$(ls "$runs"/*/catalog.csv 2>/dev/null | head -1 || true)"
    if [ -z "$csv" ]; then
        echo "   catalog failed (exit $rc):" >&2
        tail -5 "$logs/err-$v.txt" >&2
        status=1
        continue
    fi
    cp "$csv" "$out/tf-$v.csv.tmp" && mv "$out/tf-$v.csv.tmp" "$out/tf-$v.csv"
    grep -v "^written: " "$logs/out-$v.txt" >"$out/tf-$v.txt.tmp" && mv "$out/tf-$v.txt.tmp" "$out/tf-$v.txt"
    echo "   catalog ran in $(( $(date +%s) - run_start )) s: $(head -1 "$out/tf-$v.txt")" >&2
    echo "   -> results/catalog/tf-$v.csv, tf-$v.txt (exit $rc)" >&2
    [ "$rc" = 0 ] || status=1
done
echo "done in $(( $(date +%s) - all_start )) s" >&2
exit $status
