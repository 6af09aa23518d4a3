#!/usr/bin/env bash
# Images the probe integration tests run (no registry in CI): idempotent, reuses what the daemon already has.
#   mldoctor-base:bookworm         Debian 12 + python3, no torch     (probe_image/build-local-base.sh)
#   mldoctor-probe-test:cpu        the probe image FROM that base, torch's CPU wheel installed offline through
#                                  `mldoctor image build --wheelhouse` (the real Dockerfile, not a test copy)
#   mldoctor-test-busybox:latest   no python3 at all (busybox-static)
#   mldoctor-test-garbage:latest   python3 prints to stdout before any program runs (a .pth file)
#   mldoctor-test-hang:latest      python3 never gets past startup (a .pth file sleeps): the deadline test
#
# Usage: bash scripts/ci/build-test-images.sh   (as root on Debian 12, with mldoctor installed in $PYTHON's
# environment, default `python3`: run it inside the venv that has `pip install -e '.[test]'`)
#
# torch for the image: the CPU build ($MLDOCTOR_TORCH, default 2.13.0+cpu) for the *image's* Python and platform,
# whatever the host's Python is; never the CUDA build (several GB of nvidia-* wheels). The wheels are cached per
# torch version and image Python under $MLDOCTOR_WHEELHOUSE (default /tmp/mldoctor-wheelhouse).
# Where no configured index serves the +cpu build, add PyTorch's CPU index:
#   PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/ci/build-test-images.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-python3}
torch=${MLDOCTOR_TORCH:-2.13.0+cpu}
cache=${MLDOCTOR_WHEELHOUSE:-/tmp/mldoctor-wheelhouse}
base=mldoctor-base:bookworm
probe=mldoctor-probe-test:cpu

have() { docker image inspect "$1" >/dev/null 2>&1; }
die() { echo "build-test-images: $*" >&2; exit 1; }

docker info >/dev/null 2>&1 || die "no Docker daemon answers; start one: bash scripts/ci/start-docker.sh"
"$python" -c 'import mldoctor' 2>/dev/null \
  || die "$python cannot import mldoctor; in a venv: python3 -m pip install -e '.[test]', then run this again"
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
[ -x /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

bash probe_image/build-local-base.sh "$base"

# The wheelhouse: torch's CPU wheel and its dependencies for the base image's Python (3.11 on bookworm).
image_python=$(docker run --rm --network none "$base" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
arch=$(uname -m)
wheelhouse="$cache/torch-$torch-py$image_python-$arch"
if ! ls "$wheelhouse"/torch-*.whl >/dev/null 2>&1 || ! ls "$wheelhouse"/pip-*.whl >/dev/null 2>&1; then
  echo "downloading torch==$torch for the image's Python $image_python ($arch) into $wheelhouse"
  rm -rf "$wheelhouse"
  mkdir -p "$wheelhouse"
  target=(--only-binary=:all: --python-version "$image_python" --implementation cp --abi "cp${image_python/./}"
    --platform "manylinux_2_28_$arch" --platform "manylinux_2_17_$arch" --platform "manylinux2014_$arch")
  if ! "$python" -m pip download -q "${target[@]}" -d "$wheelhouse" "torch==$torch"; then
    rm -rf "$wheelhouse"
    die "no index served torch==$torch for Python $image_python; torch's CPU builds are on PyTorch's CPU index:
  PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/ci/build-test-images.sh"
  fi
  "$python" -m pip download -q --only-binary=:all: --no-deps -d "$wheelhouse" pip
fi
shopt -s nullglob
cuda=("$wheelhouse"/nvidia[-_]* "$wheelhouse"/cuda[-_]* "$wheelhouse"/triton-*)
shopt -u nullglob
if [ ${#cuda[@]} -gt 0 ]; then
  die "$wheelhouse holds CUDA wheels (${cuda[*]##*/}): the image needs torch's CPU build only"
fi
echo "wheelhouse $wheelhouse: $(du -sm "$wheelhouse" | cut -f1) MB"

# The probe image, rebuilt when the Dockerfile changed (its digest is a label) or its torch is not the one asked for.
digest=$("$python" -c 'from mldoctor.probe.launch import dockerfile_digest; print(dockerfile_digest())')
label=$(docker image inspect -f '{{ index .Config.Labels "mldoctor.dockerfile" }}' "$probe" 2>/dev/null || true)
in_image=
if [ "$label" = "$digest" ]; then
  in_image=$(docker run --rm --network none --entrypoint python3 "$probe" \
    -c 'import torch; print(torch.__version__)' 2>/dev/null || true)
fi
if [ "$in_image" = "$torch" ]; then
  echo "probe image $probe already present (torch $in_image)"
else
  "$python" -m mldoctor image build --base-image "$base" --tag "$probe" --wheelhouse "$wheelhouse" >/dev/null
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
