#!/usr/bin/env bash
# book-check.sh - build the manual (docs/, mdBook) with warnings as errors, then check it:
#   - every internal link and anchor of the built HTML resolves (scripts/book_check.py);
#   - the Architecture chapter's layering table is tests/it/layers.rs's table;
#   - the README's firewall rules are the manual's, which a lab test loads as written;
#   - every shell example that runs mcprobe says whether a test runs it or it needs a LAN.
#
#   scripts/book-check.sh          # builds into docs/book/ (ignored by git)
#
# Needs mdbook (cargo install --locked mdbook) and python3 (standard library only).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
command -v mdbook >/dev/null || { echo "book-check.sh: needs mdbook (cargo install --locked mdbook)" >&2; exit 2; }

rm -rf docs/book
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
# mdbook logs warnings (a missing chapter, a broken include, a bad SUMMARY entry) and still exits
# 0: any WARN or ERROR line fails the check.
if ! mdbook build docs >"$LOG" 2>&1; then
    cat "$LOG" >&2
    echo "book-check.sh: mdbook build failed" >&2
    exit 1
fi
if grep -E '\b(WARN|ERROR)\b' "$LOG" >&2; then
    echo "book-check.sh: mdbook printed warnings or errors (above)" >&2
    exit 1
fi
python3 scripts/book_check.py "$ROOT"
