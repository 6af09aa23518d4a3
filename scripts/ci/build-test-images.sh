#!/usr/bin/env bash
# Images the probe integration tests run (no registry in CI): idempotent, reuses what the daemon already has.
#   mldoctor-base:bookworm         Debian 12 + python3, no torch     (probe_image/build-local-base.sh)
#   mldoctor-probe-test:cpu        the probe image FROM that base, torch's CPU wheel installed offline through
#                                  `mldoctor image build --wheelhouse` (the real Dockerfile, not a test copy)
#   mldoctor-test-busybox:latest   no python3 at all (busybox-static)
#   mldoctor-test-garbage:latest   python3 prints to stdout before any program runs (a .pth file)
#   mldoctor-test-hang:latest      python3 never gets past startup (a .pth file sleeps): the deadline test
# The torch wheelhouse is cached in $MLDOCTOR_WHEELHOUSE (default /tmp/mldoctor-wheelhouse).
set -euo pipefail
cd "$(dirname "$0")/../.."
wheelhouse=${MLDOCTOR_WHEELHOUSE:-/tmp/mldoctor-wheelhouse}
base=mldoctor-base:bookworm
probe=mldoctor-probe-test:cpu

have() { docker image inspect "$1" >/dev/null 2>&1; }

bash probe_image/build-local-base.sh "$base"

mkdir -p "$wheelhouse"
ls "$wheelhouse"/torch-*.whl >/dev/null 2>&1 || python3 -m pip download -q torch==2.13.0 --only-binary=:all: -d "$wheelhouse"
ls "$wheelhouse"/pip-*.whl >/dev/null 2>&1 || python3 -m pip download -q pip --only-binary=:all: --no-deps -d "$wheelhouse"

digest=$(python3 -c 'from mldoctor.probe.launch import dockerfile_digest; print(dockerfile_digest())')
label=$(docker image inspect -f '{{ index .Config.Labels "mldoctor.dockerfile" }}' "$probe" 2>/dev/null || true)
if [ "$label" = "$digest" ]; then
  echo "probe image $probe already present"
else
  mldoctor image build --base-image "$base" --tag "$probe" --wheelhouse "$wheelhouse" >/dev/null
  echo "built probe image $probe"
fi

if ! have mldoctor-test-busybox:latest; then
  root=$(mktemp -d /tmp/mldoctor-busybox.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin"
  cp /bin/busybox "$root/bin/busybox"
  for applet in sh ls cat echo sleep true; do ln -s busybox "$root/bin/$applet"; done
  tar -C "$root" -c . | docker import -c 'ENV PATH=/bin' - mldoctor-test-busybox:latest >/dev/null
  echo "built mldoctor-test-busybox:latest"
fi

at_python_start() {  # $1 image, $2 a line of python that every python3 start runs (an `import` line in a .pth)
  have "$1" && return 0
  printf 'FROM %s\nRUN echo %q > /usr/lib/python3/dist-packages/mldoctor-test.pth\n' "$base" "$2" \
    | docker build -q -t "$1" - >/dev/null 2>&1
  echo "built $1"
}
at_python_start mldoctor-test-garbage:latest 'import sys; print("hello from a .pth file")'
at_python_start mldoctor-test-hang:latest 'import time; time.sleep(3600)'
