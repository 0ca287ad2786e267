#!/usr/bin/env bash
# Record the committed asv history: the suite at HEAD on every TensorFlow of asv.conf.json.
#
#   scripts/asv_all_tf.sh [extra asv run arguments]
#
# 1. refuses a dirty tree (results must name the commit whose code made them);
# 2. describes this machine to asv (cpu model, cores, RAM, OS) under the name
#    `cpu-2core` (ASV_MACHINE overrides), so results/asv/<machine>/machine.json says
#    what the numbers were measured on;
# 3. `asv run HEAD^!` in every environment of the matrix (one virtualenv per
#    tensorflow-cpu version; created on first use, which takes minutes);
# 4. writes results/asv/compare-tf.txt: `ckpt-harness compare-tf` of the results,
#    headed by the commit and the date.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "asv_all_tf: the tree has uncommitted changes; commit first" >&2
    exit 2
fi
commit="$(git rev-parse HEAD)"
machine="${ASV_MACHINE:-cpu-2core}"
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
cores="$(nproc)"
ram="$(awk '/^MemTotal/ {printf "%.0fGB", $2 / 1024 / 1024}' /proc/meminfo)"
os="$( (. /etc/os-release && echo "$PRETTY_NAME") 2>/dev/null || uname -s), $(uname -sr)"

asv machine --yes --machine "$machine" --os "$os" --arch "$(uname -m)" \
    --cpu "$cpu ($cores cores)" --num_cpu "$cores" --ram "$ram"
asv run HEAD^! --machine "$machine" --show-stderr "$@"

{
    echo "# ckpt-harness compare-tf of results/asv, machine $machine"
    echo "# benchmarked commit $commit, $(date -u +%Y-%m-%dT%H:%MZ), by scripts/asv_all_tf.sh"
    python -m harness compare-tf results/asv --out results/asv/compare-tf.csv
} > results/asv/compare-tf.txt
echo "asv_all_tf: results in results/asv/$machine, table in results/asv/compare-tf.txt" >&2
