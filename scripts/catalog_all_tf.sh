#!/usr/bin/env bash
# Make the failure-catalog table for every TensorFlow version of the asv matrix.
#
#   scripts/catalog_all_tf.sh [VERSION ...]     (default: 2.17.1 2.19.1 2.21.0)
#
# Each version runs `ckpt-harness catalog` in a throwaway venv under /tmp
# (tensorflow-cpu==VERSION and what it pulls in; the harness itself from this
# checkout via PYTHONPATH), then keeps:
#   results/catalog/tf-VERSION.csv   the table
#   results/catalog/tf-VERSION.txt   the terminal output
# Set KEEP_VENVS=1 to keep the venvs (they are removed on exit otherwise).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$repo/results/catalog"
python="${PYTHON:-python3}"
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(2.17.1 2.19.1 2.21.0)

work="$(mktemp -d /tmp/ckpt-catalog-tf.XXXXXX)"
cleanup() { [ "${KEEP_VENVS:-0}" = 1 ] && echo "venvs kept in $work" || rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$out"
status=0
for v in "${versions[@]}"; do
    echo "== tensorflow-cpu $v" >&2
    venv="$work/tf-$v"
    "$python" -m venv "$venv"
    start=$(date +%s)
    if ! "$venv/bin/pip" install --quiet --disable-pip-version-check "tensorflow-cpu==$v" >"$work/pip-$v.log" 2>&1; then
        echo "   install failed, see below; skipping $v" >&2
        tail -5 "$work/pip-$v.log" >&2
        status=1
        continue
    fi
    echo "   installed in $(( $(date +%s) - start )) s" >&2
    runs="$work/runs-$v"
    rc=0
    ( cd "$repo" && PYTHONPATH="$repo" TF_CPP_MIN_LOG_LEVEL=2 \
        "$venv/bin/python" -m harness catalog --out "$runs" ) >"$work/out-$v.txt" 2>"$work/err-$v.txt" || rc=$?
    csv="$(ls "$runs"/*/catalog.csv 2>/dev/null | head -1 || true)"
    if [ -z "$csv" ]; then
        echo "   catalog failed (exit $rc):" >&2
        tail -5 "$work/err-$v.txt" >&2
        status=1
        continue
    fi
    cp "$csv" "$out/tf-$v.csv.tmp" && mv "$out/tf-$v.csv.tmp" "$out/tf-$v.csv"
    grep -v "^written: " "$work/out-$v.txt" >"$out/tf-$v.txt.tmp" && mv "$out/tf-$v.txt.tmp" "$out/tf-$v.txt"
    echo "   $(head -1 "$out/tf-$v.txt") -> results/catalog/tf-$v.csv (exit $rc)" >&2
    [ "$rc" = 0 ] || status=1
done
exit $status
