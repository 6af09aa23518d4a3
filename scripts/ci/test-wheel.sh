#!/usr/bin/env bash
# Test what a user installs, not the checkout: build the sdist and, from it, the wheel; install the wheel into a
# throwaway venv and check what only packaging provides: every module, the package data (the probe image's
# Dockerfile, mldoctor/data/gpus.json), the license and project URLs, and the `mldoctor` entry point.
# Usage: bash scripts/ci/test-wheel.sh
#   PYTHON       an interpreter that has `build` (the test extras), default .venv/bin/python
#   VENV_PYTHON  the interpreter of the throwaway venv, default /usr/bin/python3 (Debian's)
set -euo pipefail
cd "$(dirname "$0")/../.."
checkout=$PWD
python=${PYTHON:-.venv/bin/python}
venv_python=${VENV_PYTHON:-/usr/bin/python3}
work=$(mktemp -d /tmp/mldoctor-wheel.XXXXXX)
trap 'rm -rf "$work"' EXIT

if ! "$python" -m build --outdir "$work/dist" . >"$work/build.log" 2>&1; then
  cat "$work/build.log" >&2
  echo "test-wheel: building the sdist and wheel failed (above)" >&2
  exit 1
fi
sdist=$(ls "$work"/dist/*.tar.gz)
wheel=$(ls "$work"/dist/*.whl)
echo "built $(basename "$sdist") and $(basename "$wheel")"

"$venv_python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$wheel"

cd "$work"  # away from the checkout: only the installed wheel can be imported
"$work/venv/bin/python" - "$checkout" "$sdist" <<'EOF'
import json
import sys
import tarfile
from importlib import metadata
from pathlib import Path

import mldoctor

checkout, sdist = Path(sys.argv[1]), Path(sys.argv[2])
installed = Path(mldoctor.__file__).parent
problems = []
if checkout in installed.parents:
    sys.exit(f"mldoctor was imported from the checkout ({installed}), not from the wheel")

# Every module of the checkout is in the wheel (pyproject.toml lists the packages: a new one must be added there).
ours = {p.relative_to(checkout / "mldoctor") for p in (checkout / "mldoctor").rglob("*.py")}
theirs = {p.relative_to(installed) for p in installed.rglob("*.py")}
for package in sorted({".".join(("mldoctor", *missing.parent.parts)) for missing in ours - theirs}):
    problems.append(f"the wheel lacks {package}: add {package!r} to [tool.setuptools] packages in pyproject.toml")

# Package data: the probe image's Dockerfile (one source: probe_image/ in the checkout) and the GPU figures.
source = (checkout / "probe_image" / "Dockerfile").read_bytes()
packaged = installed / "probe_image" / "Dockerfile"
if not packaged.is_file() or packaged.read_bytes() != source:
    problems.append(f"{packaged} is missing or differs from probe_image/Dockerfile")
try:
    from mldoctor.probe import launch

    used = Path(launch.DOCKERFILE)
    launch.default_base_image()
except Exception as exc:  # a module the wheel lacks (reported above) or a Dockerfile it cannot read
    sys.exit("\n".join([*problems, f"the probe launcher fails: {exc!r}"]))
if installed not in used.parents or not used.is_file() or used.read_bytes() != source:
    problems.append(f"`mldoctor image build` uses {used}, not the wheel's copy of probe_image/Dockerfile")
if (checkout / "mldoctor" / "probe" / "Dockerfile").exists() or (installed / "probe" / "Dockerfile").exists():
    problems.append("a second probe Dockerfile under mldoctor/probe/: probe_image/Dockerfile is the one source")
gpus = installed / "data" / "gpus.json"
if not gpus.is_file() or not json.loads(gpus.read_text(encoding="utf-8")):
    problems.append(f"{gpus} is missing or empty")

# Metadata: the license (text and SPDX expression) and the project URLs.
dist = metadata.distribution("mldoctor")
if dist.metadata.get("License-Expression") != "Apache-2.0":
    problems.append(f"License-Expression is {dist.metadata.get('License-Expression')!r}")
if not any(str(f).endswith("licenses/LICENSE") for f in dist.files or ()):
    problems.append("the wheel's .dist-info has no licenses/LICENSE")
urls = dict(u.split(", ", 1) for u in dist.metadata.get_all("Project-URL") or ())
if not {"Homepage", "Documentation"} <= set(urls):
    problems.append(f"Project-URL lacks Homepage or Documentation: {urls}")

# The sdist builds that wheel anywhere: it carries the license and the probe image's files.
with tarfile.open(sdist) as archive:
    names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
for needed in ("LICENSE", "probe_image/Dockerfile", "probe_image/__init__.py", "mldoctor/data/gpus.json"):
    if needed not in names:
        problems.append(f"the sdist lacks {needed}")

for problem in problems:
    print(f"test-wheel: {problem}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"the wheel installs and runs: {installed} (Dockerfile {used.relative_to(installed)}, gpus.json)")
EOF
"$work/venv/bin/mldoctor" --version
"$work/venv/bin/mldoctor" checks >/dev/null
echo "mldoctor --version and mldoctor checks run from the wheel"
