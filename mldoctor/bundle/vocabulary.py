"""The words no pseudonym may replace, declared.

`--redact-hosts` replaces this machine's host names and users wherever they appear as whole words. A machine can be
called anything, including a word mldoctor itself reads back: a host called `snap` would turn the recorded Docker
flavour `snap` into `host1`, and `mldoctor check --facts` would then judge a machine that does not exist. So the
words the rules and gatherers compare facts with are reserved, and a name equal to one of them is left alone (it
identifies little: it is a common word).

Field names of the report's schema and the words of check ids are reserved too; those are read from the live
dataclasses and the check registry (see `redact._reserved`), not listed here. This list holds the *values*: the
one-word strings that mldoctor.rules and mldoctor.facts compare with. It is declared rather than found by parsing
the package's source at run time (an installed wheel may carry no source, and what the redactor keeps should not
depend on how a file happens to be written). `tests/unit/test_redact.py` cross-checks it against the source of the
rule and fact modules and fails when a comparison with a word missing here is added.
"""

from __future__ import annotations

VOCABULARY = frozenset(
    [
        # docker: flavours, endpoints, how the daemon was started, error kinds the gatherers record
        "auto",
        "certificate",
        "connect",
        "context",
        "desktop",
        "desktop-linux",
        "docker-compose-plugin",
        "docker-proxy",
        "docker_context",
        "docker_host",
        "dockerd",
        "engine",
        "exited",
        "default-ipc-mode",
        "default-shm-size",
        "cuda_visible_devices",
        "gpu-",
        "mig-",
        "ipam",
        "options",
        "restart",
        "btime",
        "missing_socket",
        "native",
        "no_permission",
        "paramiko",
        "permission",
        "plugin",
        "podman",
        "refused",
        "registry",
        "rootless",
        "snap",
        "standalone",
        "systemd",
        "timeout",
        "tls",
        # docker info / version / system df keys, lower-cased (the facts keep some of these documents as dicts)
        "apiversion",
        "buildcache",
        "cdispecdirs",
        "cgroupdriver",
        "cgroupversion",
        "defaultruntime",
        "dockerrootdir",
        "features",
        "inuse",
        "kernelversion",
        "loggingdriver",
        "minapiversion",
        "operatingsystem",
        "ostype",
        "refcount",
        "securityoptions",
        "size",
        "sizerw",
        "usagedata",
        # daemon.json keys and values
        "cdi-spec-dirs",
        "data-root",
        "default-runtime",
        "exec-opts",
        "json-file",
        "local",
        "log-driver",
        "log-opts",
        "max-size",
        "storage-driver",
        # environment and /proc/meminfo names the gatherers read
        "memavailable",
        "memfree",
        "memtotal",
        "swaptotal",
        "xdg_config_home",
        "xdg_runtime_dir",
        # NVIDIA: driver and NVML states, kernel modules, the toolkit
        "compute",
        "driver_not_loaded",
        "driver_too_old",
        "fabric_manager",
        "forward_compat",
        "library_not_found",
        "no_bindings",
        "no_device",
        "not_started",
        "not_supported",
        "nouveau",
        "nvidia-container-cli",
        "nvidia_",
        "nvidia_uvm",
        "nvml_unknown",
        "nvswitch",
        "version_mismatch",
        "completed",
        "in_progress",
        "enable",
        "microsoft",
        # the probe: stages of its run, dtypes, CUDA architectures
        "bf16",
        "fp16",
        "create",
        "start",
        "wait",
        "exit",
        "output",
        "mldoctor-probe",
        "ptx",
        "sm",
        "cpu",
        "gpu",
        "image",
        "container",
        "running",
        # operating systems the fixes are rendered for
        "rhel",
        "suse",
        "arch",
        # statuses, and generic values compared with
        "all",
        "count",
        "fail",
        "failed",
        "max",
        "none",
        "other",
        "state",
        "true",
        "warn",
    ]
)
