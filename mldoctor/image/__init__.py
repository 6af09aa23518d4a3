"""`mldoctor image check`: will this image run on our GPUs? Judged statically, nothing started.

The same four layers as `mldoctor check`, in one package so the feature can be read (and removed) as a whole:

    facts.py     what an image is, as typed data (config, history, the few files that matter)
    daemon.py    read it from the Docker daemon: inspect, history, a container created and never started
    archive.py   read it from a `docker save` tarball or an OCI layout folder, no daemon at all
    targets.py   what it must run on: --driver/--gpu, this host's driver and GPUs, or the policy file
    checks.py    pure judgements `judge(facts, targets) -> list[CheckResult]` (ids image.*)
    dockerfile.py  a bounded Dockerfile parser and hadolint-style rules (image.dockerfile.DLxxxx)
    report.py    a Report every existing renderer prints
    command.py   the click command `check`, for the `image` group
"""
