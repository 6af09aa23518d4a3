#!/usr/bin/env bash
# A Docker daemon for the integration tests (as root on Debian 12, which has no systemd here): reuses a daemon that
# already answers; otherwise installs Debian's docker.io if dockerd is missing and starts dockerd by hand.
# Never starts a daemon with --bridge=none in the host's network namespace: that deletes the host's docker0.
# Usage: bash scripts/ci/start-docker.sh      (log of a daemon it starts: $MLDOCTOR_DOCKERD_LOG)
set -euo pipefail
log=${MLDOCTOR_DOCKERD_LOG:-/tmp/mldoctor-ci-dockerd.log}

if ! command -v dockerd >/dev/null; then
  echo "installing docker.io"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi
groupadd -f docker   # dockerd hands its socket to this group; the permission tests rely on it

if docker info >/dev/null 2>&1; then
  echo "a Docker daemon already answers"
else
  echo "starting dockerd (log: $log)"
  setsid dockerd >"$log" 2>&1 </dev/null &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  if ! docker info >/dev/null 2>&1; then
    echo "dockerd did not come up; its log:" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
fi
docker version --format 'docker server {{.Server.Version}} (API {{.Server.APIVersion}})'
