#!/usr/bin/env bash
# Make every committed result again, from the committed tree, one commit per result.
#
#   scripts/record_all.sh [--only asv,crash,catalog,distributed]
#
# Any change under harness/ or benchmarks/ makes the committed results stale: they must
# come from the code of the submission. This runs, in this order, each recorder the
# results name (results/README.md), and commits what each wrote before the next starts:
#   asv          scripts/asv_all_tf.sh (TF 2.16-2.21; about 55 min on the 2-core VM)
#   crash        scripts/crash_matrix.py --trials 12 --timeout 420 (about 8 min), then
#                scripts/replay_cases.py on the cases it kept (about 5 min; commits nothing)
#   catalog      scripts/catalog_all_tf.sh (TF 2.17.1, 2.19.1, 2.21.0)
#   distributed  scripts/distributed_matrix.py, then --tf-defaults (about 35 min)
# The first commit it makes sits on the code commit, so every later recorder runs on a tree
# whose harness/ and benchmarks/ are that commit's: each result's own header names the
# commit it ran on, and each commit message here names the code commit.
# Venvs for other TensorFlow versions are kept in $VENV_DIR (default /tmp/ckpt-record-venvs)
# for the next run. Run it on a quiet machine: asv times things.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
only="asv,crash,catalog,distributed"
if [ "${1:-}" = "--only" ] && [ -n "${2:-}" ]; then
    only="$2"
elif [ $# -gt 0 ]; then
    echo "record_all: usage: scripts/record_all.sh [--only asv,crash,catalog,distributed]" >&2
    exit 2
fi
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "record_all: the tree has uncommitted changes; commit first" >&2
    exit 2
fi
code="$(git rev-parse --short HEAD)"
export VENV_DIR="${VENV_DIR:-/tmp/ckpt-record-venvs}"
mkdir -p "$VENV_DIR"

wants() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
commit() {   # commit what the recorder wrote under $1, if anything changed
    git add -A -- "$1"
    if git diff --cached --quiet; then
        echo "record_all: $2: nothing changed" >&2
    else
        git commit -q -m "$2 at $code (scripts/record_all.sh)"
    fi
}
step() { echo "record_all: $1 started $(date -u +%H:%M:%SZ)" >&2; }
# the matrices exit 1 when a cell did not end `complete`: that is their finding, recorded all the same
matrix() { "$@" || echo "record_all: exit $? from: $*" >&2; }

if wants asv; then
    step asv
    scripts/asv_all_tf.sh
    commit results/asv "asv results on TF 2.16-2.21"
fi
if wants crash; then
    step crash
    matrix python scripts/crash_matrix.py --trials 12 --timeout 420
    commit results/crash "Crash matrix"
    step replay   # every kept case, judged again from its own folder: does it say what it recorded?
    python scripts/replay_cases.py || echo "record_all: a kept crash case does not replay as recorded (above)" >&2
fi
if wants catalog; then
    step catalog
    scripts/catalog_all_tf.sh
    commit results/catalog "Catalog"
fi
if wants distributed; then
    step distributed
    matrix python scripts/distributed_matrix.py
    commit results/distributed/matrix.csv "Distributed task-fault matrix (fail-fast)"
    matrix python scripts/distributed_matrix.py --tf-defaults --out results/distributed/tf-defaults
    commit results/distributed/tf-defaults "Distributed task-fault matrix (TF defaults)"
fi
echo "record_all: done $(date -u +%H:%M:%SZ); code of $code" >&2
