#!/usr/bin/env bash
# Validate mldoctor's NVIDIA side on a real GPU host, in one command.
#
# Made for a GPU machine WITHOUT Docker and WITHOUT network: torch and nvidia-ml-py installed, mldoctor either
# installed or run from this checkout. The docker checks fail there, as they should; what this validates is the
# NVIDIA facts and checks (and the benchmark, once `mldoctor gpu-bench` exists).
#
# Writes check.json, gpu-bench.json and reference.json (the plain 8192^3 bf16 torch.mm loop of
# benchmarks/reference_matmul.py, in the same run) under $OUT when it is set, else under a temporary directory,
# and prints a short table last, with mldoctor's bf16 figure over the reference loop's and gpu-bench's wall time. Exit status: 0 when the NVIDIA checks (and gpu-bench's results) have no FAIL or ERROR,
# 1 when they do, 2 when mldoctor produced no report (or one without NVIDIA results).
# Usage: scripts/gpu-validate.sh            (from anywhere; no root needed)
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$(mktemp -d -t mldoctor-gpu-validate.XXXXXX)}
mkdir -p "$out"
: >"$out/runs.txt"
python=${PYTHON:-python3}

# Run the installed mldoctor, or this checkout's when it is not installed (no network for pip here).
if "$python" -c 'import mldoctor' 2>/dev/null; then
    mldoctor() { "$python" -m mldoctor "$@"; }
else
    mldoctor() { PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" "$python" -m mldoctor "$@"; }
fi

run() {  # run NAME ARGS...: mldoctor ARGS > $out/NAME.json, stderr to $out/NAME.err; the status is in the JSON
    local name=$1
    shift
    local started=$SECONDS
    mldoctor "$@" --format json >"$out/$name.json" 2>"$out/$name.err"
    echo "mldoctor $* -> exit $? in $((SECONDS - started)) s" >>"$out/runs.txt"
}

nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || true  # the driver's own view, to compare with the facts
# --no-probe: no Docker here, so no probe container. --require-gpus 1: on a host where NVML sees no GPU every
# NVIDIA check would SKIP and this script would pass without having validated anything.
run check check --timeout 15 --no-probe --require-gpus 1
run gpu-bench gpu-bench --no-container
"$python" "$repo/benchmarks/reference_matmul.py" >"$out/reference.json" 2>"$out/reference.err"

"$python" - "$out" <<'PY'
import json
import os
import sys

out = sys.argv[1]
reports = {}
for name in ("check", "gpu-bench"):
    path = os.path.join(out, f"{name}.json")
    if not os.path.exists(path):
        continue
    try:
        with open(path) as handle:
            reports[name] = json.load(handle)
    except ValueError:
        with open(os.path.join(out, f"{name}.err")) as handle:
            print(f"{name}: no JSON report; its stderr:\n{handle.read()[-2000:]}")
if "check" not in reports:
    sys.exit(2)
bad = judged_count = 0
print(f"\nmldoctor on {reports['check'].get('host', '?')} - files in {out}")
for name, report in reports.items():
    for r in report.get("results", []):
        # What this validates: the NVIDIA checks, and everything gpu-bench says. The rest of `check` (docker) is
        # expected to fail on a host without Docker: marked ~.
        judged = name == "gpu-bench" or r["id"].startswith("nvidia.")
        judged_count += judged
        bad += judged and r["status"] in ("FAIL", "ERROR")
        mark = " " if judged else "~"
        print(f"{mark} {r['status']:<5} {r['id']:<28} {r['summary'][:90]}")
if not judged_count:
    print("no NVIDIA results in the report: nothing was validated")
    sys.exit(2)
try:
    with open(os.path.join(out, "reference.json")) as handle:
        reference = json.loads(handle.read().strip().splitlines()[-1])
except (OSError, ValueError, IndexError):
    reference = None
rows = reports.get("gpu-bench", {}).get("benchmarks", [])
bf16 = [r for r in rows if r["metric"] in ("bf16", "fp16") and r["gpu"] == "0"]
if reference and bf16:
    ratio = bf16[0]["measured"] / reference["tflops"]
    print(f"  bf16 GPU 0: mldoctor {bf16[0]['measured']:.1f} TFLOP/s, reference loop {reference['tflops']:.1f}: "
          f"{ratio:.3f}x (target >= 0.97)")
with open(os.path.join(out, "runs.txt")) as handle:
    print("  " + handle.read().strip().replace("\n", "\n  "))
sys.exit(1 if bad else 0)
PY
