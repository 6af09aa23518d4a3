#!/usr/bin/env bash
# Install Debian's libnvidia-ml1 (the NVML library, from the non-free component) on a machine without an NVIDIA
# GPU, so the integration tests see NVML's real "Driver Not Loaded" instead of a fake.
#
# The machine's apt sources are left as they are: apt reads a private copy of them with `contrib non-free` added
# (Dir::Etc::SourceList / SourceParts) and keeps that copy's package lists apart (Dir::State::Lists).
# Only the library is installed (--no-install-recommends): no driver, no kernel module, no DKMS build.
# Idempotent: when libnvidia-ml.so.1 is already there it only prints where.
# Usage: scripts/ci/install-libnvidia-ml.sh        (as root, or with sudo available)
set -euo pipefail

PACKAGE=libnvidia-ml1
STATE=${MLDOCTOR_APT_STATE:-/var/tmp/mldoctor-apt-nonfree}

where() {  # awk reads to the end: an early exit would SIGPIPE ldconfig and fail the pipeline
    ldconfig -p | awk '/libnvidia-ml\.so\.1 / && !found {found = $NF} END {if (found) print found}'
}

found=$(where)
if [[ -n $found ]]; then
    echo "libnvidia-ml.so.1 already installed: $found"
    exit 0
fi

SUDO=
if [[ $(id -u) -ne 0 ]]; then
    SUDO=sudo
fi

# A copy of every apt source file; Debian archive entries get `contrib non-free` (libnvidia-ml1 is in non-free,
# its nvidia-alternative needs glx-alternative-nvidia from contrib). Both one-line and deb822 formats.
$SUDO rm -rf "$STATE"
$SUDO mkdir -p "$STATE/sources.list.d" "$STATE/lists/partial"
add_components='
    function add(line,    c) {
        if (line !~ /[[:space:]]contrib([[:space:]]|$)/) line = line " contrib"
        if (line !~ /[[:space:]]non-free([[:space:]]|$)/) line = line " non-free"
        return line
    }'
add_to_list="$add_components"'
    /^[[:space:]]*deb(-src)?[[:space:]].*debian/ { $0 = add($0) }
    { print }'
add_to_deb822="$add_components"'
    function flush(    i) {
        for (i = 1; i <= n; i++) print (debian && lines[i] ~ /^Components:/) ? add(lines[i]) : lines[i]
        n = 0; debian = 0
    }
    /^[[:space:]]*$/ { flush(); print; next }
    { lines[++n] = $0; if ($0 ~ /^URIs:.*debian/) debian = 1 }
    END { flush() }'
if [[ -f /etc/apt/sources.list ]]; then
    awk "$add_to_list" /etc/apt/sources.list | $SUDO tee "$STATE/sources.list" >/dev/null
else
    $SUDO touch "$STATE/sources.list"
fi
shopt -s nullglob
for source in /etc/apt/sources.list.d/*.list; do
    awk "$add_to_list" "$source" | $SUDO tee "$STATE/sources.list.d/$(basename "$source")" >/dev/null
done
for source in /etc/apt/sources.list.d/*.sources; do
    awk "$add_to_deb822" "$source" | $SUDO tee "$STATE/sources.list.d/$(basename "$source")" >/dev/null
done

APT=(
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get
    -o "Dir::Etc::SourceList=$STATE/sources.list"
    -o "Dir::Etc::SourceParts=$STATE/sources.list.d"
    -o "Dir::State::Lists=$STATE/lists"
)
"${APT[@]}" update -qq
"${APT[@]}" install -y -qq --no-install-recommends "$PACKAGE"

found=$(where)
if [[ -z $found ]]; then
    echo "error: $PACKAGE installed but ldconfig does not list libnvidia-ml.so.1; dpkg -L $PACKAGE shows:" >&2
    dpkg -L "$PACKAGE" >&2
    exit 1
fi
echo "libnvidia-ml.so.1 installed: $found"
