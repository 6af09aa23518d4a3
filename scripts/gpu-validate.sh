#!/usr/bin/env bash
# Validate mldoctor's NVIDIA side on a real GPU host, in one command.
#
# Made for a GPU machine WITHOUT Docker and WITHOUT network: torch and nvidia-ml-py installed, mldoctor either
# installed or run from this checkout. The docker checks fail there, as they should; what this validates is the
# NVIDIA facts and checks (and the benchmark, once `mldoctor gpu-bench` exists).
#
# Writes check.json, gpu-bench.json and reference.json (the plain 8192^3 bf16 torch.mm loop of
# benchmarks/reference_matmul.py, in the same run) under $OUT when it is set, else under a temporary directory,
# and prints a short table last, with mldoctor's bf16 figure over the reference loop's and gpu-bench's wall time,
# then the all-reduce across the GPUs (NCCL, busbw per size; world size 1 on a single GPU, which is said, not
# failed) and the peer-access matrix with the slowest peer copy. Exit status: 0 when the NVIDIA checks (and gpu-bench's results) have no FAIL or ERROR,
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
document = ((reports.get("gpu-bench") or {}).get("facts") or {}).get("probe", {}) or {}
document = document.get("document") or {}
bench = document.get("bench") or {}
allreduce, p2p = bench.get("allreduce"), bench.get("p2p")
if allreduce:
    state = "HUNG: ranks %s killed at %s s" % (allreduce["unfinished"], allreduce["timeout_s"]) if allreduce["hung"] else "ok"
    print(f"  all-reduce: {allreduce['backend']} on {allreduce['device']}, world size {allreduce['world_size']}"
          f"{' (one GPU: no peers, busbw does not apply)' if allreduce['world_size'] == 1 else ''}, {state}, "
          f"{allreduce['elapsed_s']} s{'; error: ' + allreduce['error'] if allreduce.get('error') else ''}")
    for size in allreduce["sizes"]:
        print(f"    {size['bytes'] >> 20:>5} MiB: busbw {size['busbw_gbps']:8.1f} GB/s, algbw {size['algbw_gbps']:8.1f}, "
              f"{size['median_ms']:.3f} ms x {size['iters']}{'' if size['ok'] else ', WRONG SUMS'}")
elif document.get("devices"):
    print("  all-reduce: missing from the probe's document on a GPU host: the new path did not run")
    bad += 1
if p2p:
    print(f"  peer access ({p2p['devices']} GPUs): " + " | ".join(
        "".join("-" if v is None else "y" if v else "N" for v in row) for row in p2p["access"]))
    if p2p["copies"]:
        slow = min(p2p["copies"], key=lambda c: c["gbps"])
        fast = max(c["gbps"] for c in p2p["copies"])
        print(f"    peer copies: {len(p2p['copies'])} pairs, slowest {slow['src']}->{slow['dst']} "
              f"{slow['gbps']:.1f} GB/s, fastest {fast:.1f}")
with open(os.path.join(out, "runs.txt")) as handle:
    print("  " + handle.read().strip().replace("\n", "\n  "))
sys.exit(1 if bad else 0)
PY
