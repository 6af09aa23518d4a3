"""Fix commands, built for the host they were found on: its distro family, init system and Docker flavour.

Rules never spell out `systemctl`, `apt-get` or a daemon.json path themselves; they ask these builders, so one
place knows how each distro installs a package, how each Docker flavour restarts, and where NVIDIA's packages
come from. `host` holds the generic ones, `docker` the daemon's, `nvidia` the driver's and the toolkit's.
"""
