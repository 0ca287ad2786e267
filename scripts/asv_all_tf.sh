#!/usr/bin/env bash
# Record the committed asv history: the suite at HEAD on every TensorFlow of asv.conf.json.
#
#   scripts/asv_all_tf.sh [extra asv run arguments]
#
# 1. refuses a dirty tree (results must name the commit whose code made them);
# 2. describes this machine to asv (cpu model, cores, RAM, OS) under a name made of
#    its cores and CPU model, e.g. `cpu-2core-amd-epyc` (ASV_MACHINE overrides), so
#    results/asv/<machine>/machine.json says what the numbers were measured on and
#    another CPU never adds to the same history (`cpu-2core` holds the results of an
#    Intel Xeon VM, recorded before this naming);
# 3. `asv run HEAD^!` in every environment of the matrix (one virtualenv per
#    tensorflow-cpu version; created on first use, which takes minutes);
# 4. writes results/asv/compare-tf.txt: `ckpt-harness compare-tf` of this machine's
#    results, headed by the machine, the commit and the date.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "asv_all_tf: the tree has uncommitted changes; commit first" >&2
    exit 2
fi
commit="$(git rev-parse HEAD)"
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
cores="$(nproc)"
slug="$(printf '%s' "$cpu" | tr 'A-Z' 'a-z' | sed 's/([^)]*)//g; s/[^a-z0-9]\{1,\}/-/g; s/^-//; s/-$//')"
machine="${ASV_MACHINE:-cpu-${cores}core-${slug:-unknown}}"
ram="$(awk '/^MemTotal/ {printf "%.0fGB", $2 / 1024 / 1024}' /proc/meminfo)"
os="$( (. /etc/os-release && echo "$PRETTY_NAME") 2>/dev/null || uname -s), $(uname -sr)"

asv machine --yes --machine "$machine" --os "$os" --arch "$(uname -m)" \
    --cpu "$cpu ($cores cores)" --num_cpu "$cores" --ram "$ram"
asv run HEAD^! --machine "$machine" --show-stderr "$@"

# compare-tf reads every machine under its folder: give it this machine's alone
only="$(mktemp -d)"
trap 'rm -rf "$only"' EXIT
ln -s "$repo/results/asv/$machine" "$only/$machine"
ln -s "$repo/results/asv/benchmarks.json" "$only/benchmarks.json"   # the parameters' names
{
    echo "# ckpt-harness compare-tf of results/asv/$machine ($cpu, $cores cores)"
    echo "# benchmarked commit $commit, $(date -u +%Y-%m-%dT%H:%MZ), by scripts/asv_all_tf.sh"
    python -m harness compare-tf "$only" --out results/asv/compare-tf.csv
} > results/asv/compare-tf.txt
echo "asv_all_tf: results in results/asv/$machine, table in results/asv/compare-tf.txt" >&2
