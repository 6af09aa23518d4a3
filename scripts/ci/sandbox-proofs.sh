#!/usr/bin/env bash
# The fix proofs (tests/sandbox) on their own, as root: each test applies a printed fix in a sandbox of its own
# (private namespaces, its own dockerd) and sees the check PASS. Fails when a proof was skipped or none ran, and
# prints the suite's summary line ("sandbox: N fixes applied and proven ...").
# Usage: PYTHON=.venv/bin/python bash scripts/ci/sandbox-proofs.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
py=${PYTHON:-python3}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
CI=true PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$py" -m pytest tests/sandbox -m sandbox -q -rs -p no:cacheprovider 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if grep -q '^SKIPPED' "$log"; then
  echo "fix proofs were skipped (above)" >&2
  exit 1
fi
if ! grep -qE '^sandbox: [1-9][0-9]* fixes applied and proven' "$log"; then
  echo "no fix was proven" >&2
  exit 1
fi
exit "$status"
