from __future__ import annotations

from dataclasses import replace

import pytest
from factories import GIB, Reclaimable, daemon, disk, docker, docker_socket, down, facts, host
from helpers import result

from mldoctor.engine.daemon import DaemonProcess
from mldoctor.facts.docker import CliFacts, DaemonConfig, Endpoint, SocketFacts
from mldoctor.facts.host import UserFacts
from mldoctor.model import Status, Step
from mldoctor.policy import Policy


class TestCli:
    def test_pass_names_version_and_path(self):
        r = result(facts(), "docker.cli")
        assert r.status is Status.PASS
        assert "24.0.7" in r.summary and "/usr/bin/docker" in r.summary

    def test_missing_cli_warns_with_distro_install(self):
        r = result(facts(docker=docker(cli=CliFacts())), "docker.cli")
        assert r.status is Status.WARN
        assert r.fix == "sudo apt-get install -y docker.io"

    def test_fix_follows_distro_family(self):
        rhel = host(os=host().os.__class__(id="rocky", id_like=["rhel", "centos", "fedora"]))
        r = result(facts(host=rhel, docker=docker(cli=CliFacts())), "docker.cli")
        assert r.fix == "sudo dnf install -y docker-ce-cli"

    def test_cli_without_version_warns(self):
        r = result(facts(docker=docker(cli=CliFacts(path="/usr/bin/docker"))), "docker.cli")
        assert r.status is Status.WARN and "--version" in r.fix


class TestDaemon:
    def test_pass(self):
        r = result(facts(), "docker.daemon")
        assert r.status is Status.PASS and "unix:///var/run/docker.sock" in r.summary

    def test_missing_socket_says_start_it(self):
        r = result(facts(docker=down("missing_socket")), "docker.daemon")
        assert r.status is Status.FAIL
        assert "not running" in r.summary
        assert r.fix == "sudo systemctl enable --now docker"

    def test_missing_socket_without_systemd_uses_service(self):
        r = result(facts(host=host(systemd=False), docker=down("missing_socket")), "docker.daemon")
        assert r.fix == "sudo service docker start"

    def test_missing_socket_rootless(self):
        d = down("missing_socket", flavour="rootless", endpoint=Endpoint(url="unix:///run/user/1000/docker.sock"))
        assert result(facts(docker=d), "docker.daemon").fix == "systemctl --user enable --now docker"

    def test_engine_not_installed_gives_install_steps(self):
        r = result(facts(docker=down("missing_socket", dockerd_installed=False)), "docker.daemon")
        assert "not installed" in r.summary
        assert r.fix.startswith("sudo apt-get install -y docker.io && sudo systemctl enable --now docker")

    def test_rootless_socket_found_elsewhere(self):
        d = down("missing_socket", rootless_socket="/run/user/1000/docker.sock")
        r = result(facts(docker=d), "docker.daemon")
        assert r.fix == "export DOCKER_HOST=unix:///run/user/1000/docker.sock"

    def test_docker_host_pointing_nowhere(self):
        d = down("missing_socket", endpoint=Endpoint(url="unix:///tmp/x.sock", source="DOCKER_HOST"))
        r = result(facts(docker=d), "docker.daemon")
        assert "DOCKER_HOST points at unix:///tmp/x.sock" in r.summary
        assert r.fix.startswith("unset DOCKER_HOST")

    def test_context_pointing_nowhere(self):
        endpoint = Endpoint(url="unix:///tmp/x.sock", source="context", context="elsewhere")
        r = result(facts(docker=down("missing_socket", endpoint=endpoint)), "docker.daemon")
        assert "context 'elsewhere' points at unix:///tmp/x.sock" in r.summary
        assert r.fix.startswith("unset DOCKER_CONTEXT; docker context use default")

    def test_refused_is_a_stale_socket(self):
        r = result(facts(docker=down("refused")), "docker.daemon")
        assert r.status is Status.FAIL and "stale socket" in r.summary
        assert r.fix.startswith("sudo systemctl restart docker") and "journalctl -u docker" in r.fix

    def test_docker_host_at_a_stale_socket_elsewhere_is_unset_not_this_daemon_restarted(self):
        """Restarting this host's daemon would stop its containers and leave DOCKER_HOST at the dead socket."""
        endpoint = Endpoint(url="unix:///run/old-docker.sock", source="DOCKER_HOST")
        sock = SocketFacts(path="/run/old-docker.sock", exists=True, is_socket=True)
        r = result(facts(docker=down("refused", endpoint=endpoint, socket=sock)), "docker.daemon")
        assert r.status is Status.FAIL and "stale socket" in r.summary
        assert r.fix.startswith("unset DOCKER_HOST   # to use this host's daemon") and "restart" not in r.fix
        default = Endpoint(url="unix:///var/run/docker.sock", source="DOCKER_HOST")  # its own socket: restarted
        r = result(facts(docker=down("refused", endpoint=default)), "docker.daemon")
        assert r.fix.startswith("sudo systemctl restart docker")

    def test_timeout(self):
        r = result(facts(docker=down("timeout")), "docker.daemon")
        assert "did not answer" in r.summary and "--timeout" in r.fix

    @pytest.mark.parametrize(
        ("kind", "summary_part", "fix_part"),
        [
            ("tls", "TLS handshake", "DOCKER_CERT_PATH"),
            ("ssh_no_paramiko", "paramiko", "docker[ssh]"),
            ("bad_host", "not a valid daemon address", "unset DOCKER_HOST"),
            ("context_missing", "does not exist", "unset DOCKER_CONTEXT; docker context use default"),
            ("unreachable", "cannot reach", "network"),
            ("api_error", "answered with an error", "restart docker"),
            ("other", "could not talk", "docker version"),
            ("sdk_missing", "docker Python package is missing", "pip install 'docker>=7.1'"),
        ],
    )
    def test_each_cause_has_its_own_fix(self, kind, summary_part, fix_part):
        endpoint = Endpoint(url="ssh://me@gpu", source="DOCKER_HOST", context="ctx")
        r = result(facts(docker=down(kind, endpoint=endpoint)), "docker.daemon")
        assert r.status is Status.FAIL
        assert summary_part in r.summary
        assert fix_part in r.fix
        assert "error: boom" in r.details

    def test_permission_denied_points_at_permission_check(self):
        r = result(facts(docker=down("permission")), "docker.daemon")
        assert r.status is Status.SKIP and r.blocked_by == "docker.permission"


class TestPermission:
    def denied(self, user: UserFacts, **socket_changes):
        sock = docker_socket(accessible=False, **socket_changes)
        return facts(host=host(user=user), docker=down("permission", socket=sock))

    def test_pass_through_group(self):
        r = result(facts(), "docker.permission")
        assert r.status is Status.PASS and "through group docker" in r.summary

    def test_not_in_group(self):
        user = UserFacts(uid=1001, name="bob", active_groups=["bob"], member_of=["bob"])
        r = result(self.denied(user), "docker.permission")
        assert r.status is Status.FAIL
        assert r.fix == "sudo usermod -aG docker bob   # then log out and back in"
        assert "chmod 666" not in r.fix and any("root-equivalent" in d for d in r.details)

    def test_in_group_but_not_in_this_session(self):
        user = UserFacts(uid=1001, name="bob", active_groups=["bob"], member_of=["bob", "docker"])
        r = result(self.denied(user), "docker.permission")
        assert r.status is Status.FAIL and "does not carry it" in r.summary
        assert r.fix == "newgrp docker   # a shell that carries it; or log out and back in"  # a command, not prose
        assert r.effects == ["relogin"]

    def test_socket_of_a_gid_without_a_name_gets_the_group_made_not_a_usermod_to_a_number(self):
        """`usermod -aG 105 bob` fails (group '105' does not exist): the docker group is made, then joined."""
        user = UserFacts(uid=1001, name="bob", active_groups=["bob"], member_of=["bob"])
        r = result(self.denied(user, group="105"), "docker.permission")
        assert r.status is Status.FAIL and "its group 105 has no name" in r.summary
        assert r.fix.splitlines() == [
            "sudo groupadd -f docker && sudo systemctl restart docker   # dockerd gives its socket to the docker group",
            "sudo usermod -aG docker bob   # then log out and back in",
        ]
        assert "usermod -aG 105" not in r.fix

    def test_socket_of_unexpected_group(self):
        user = UserFacts(uid=1001, name="bob", active_groups=["bob"], member_of=["bob"])
        r = result(self.denied(user, group="root", mode=0o600), "docker.permission")
        assert r.status is Status.FAIL and "mode 0600" in r.summary
        assert r.fix.startswith("sudo groupadd -f docker && sudo systemctl restart docker")

    def test_missing_socket_defers_to_daemon(self):
        sock = SocketFacts(path="/var/run/docker.sock")
        r = result(facts(docker=down("missing_socket", socket=sock)), "docker.permission")
        assert r.status is Status.SKIP and r.blocked_by == "docker.daemon"

    def test_tcp_endpoint_has_no_file_permission(self):
        d = docker(endpoint=Endpoint(url="tcp://10.0.0.2:2376", source="DOCKER_HOST"), socket=None)
        assert result(facts(docker=d), "docker.permission").status is Status.PASS


class TestDependants:
    @pytest.mark.parametrize(
        "check_id", ["docker.version", "docker.flavour", "docker.storage", "docker.disk", "docker.logging"]
    )
    def test_skip_names_first_broken_link(self, check_id):
        r = result(facts(docker=down("missing_socket")), check_id)
        assert r.status is Status.SKIP
        assert r.summary == "skipped: docker.daemon failed" and r.blocked_by == "docker.daemon"

    def test_skip_chain_reaches_permission(self):
        r = result(facts(docker=down("permission")), "docker.disk")
        assert r.summary == "skipped: docker.permission failed"


class TestVersion:
    @pytest.mark.parametrize(
        ("api", "status"), [("1.43", Status.PASS), ("1.41", Status.PASS), ("1.40", Status.WARN), ("1.39", Status.FAIL)]
    )
    def test_floors(self, api, status):
        r = result(facts(docker=docker(daemon=daemon(api_version=api))), "docker.version")
        assert r.status is status
        if status is not Status.PASS:
            assert r.fix.startswith("upgrade the engine")


class TestFlavour:
    def test_engine(self):
        r = result(facts(), "docker.flavour")
        assert r.status is Status.PASS and r.summary == "Docker Engine (rootful)"

    def test_desktop_on_linux_warns(self):
        r = result(facts(docker=docker(flavour="desktop")), "docker.flavour")
        assert r.status is Status.WARN and r.fix.startswith("docker context use default")

    def test_desktop_on_wsl_is_fine(self):
        wsl = host(kernel="5.15.153.1-microsoft-standard-WSL2")
        assert result(facts(host=wsl, docker=docker(flavour="desktop")), "docker.flavour").status is Status.PASS

    def test_podman_warns_about_cdi(self):
        r = result(facts(docker=docker(flavour="podman")), "docker.flavour")
        assert r.status is Status.WARN and "cdi generate" in r.fix

    def test_two_daemons_warn(self):
        r = result(facts(docker=docker(rootless_socket="/run/user/1000/docker.sock")), "docker.flavour")
        assert r.status is Status.WARN and "rootless" in r.summary


class TestStorage:
    def test_overlay2_passes(self):
        r = result(facts(), "docker.storage")
        assert r.status is Status.PASS and r.summary.startswith("overlay2 storage, systemd cgroup driver, cgroup v2")

    @pytest.mark.parametrize("driver", ["vfs", "devicemapper", "aufs"])
    def test_discouraged_drivers_warn(self, driver):
        r = result(facts(docker=docker(daemon=daemon(storage_driver=driver))), "docker.storage")
        assert r.status is Status.WARN and '"storage-driver": "overlay2"' in r.fix


class TestDisk:
    def test_plenty(self):
        assert result(facts(), "docker.disk").status is Status.PASS

    def test_warn_under_20_gib(self):
        d = docker(root_dir=disk("/var/lib/docker", free_gib=15, total_gib=100))
        assert result(facts(docker=d), "docker.disk").status is Status.WARN

    def test_warn_under_10_percent_even_with_many_gib(self):
        d = docker(root_dir=disk("/var/lib/docker", free_gib=150, total_gib=2000))
        assert result(facts(docker=d), "docker.disk").status is Status.WARN

    def test_fail_names_reclaimable_space(self):
        d = docker(
            root_dir=disk("/var/lib/docker", free_gib=2, total_gib=100),
            reclaimable=Reclaimable(images=12 * GIB, build_cache=3 * GIB),
        )
        r = result(facts(docker=d), "docker.disk")
        assert r.status is Status.FAIL
        assert r.fix.splitlines() == [
            "docker image prune -a   # frees 12.0 GiB",
            "docker builder prune   # frees 3.0 GiB",
        ]

    def test_fail_on_inodes(self):
        d = docker(root_dir=disk("/var/lib/docker", inodes_free_pct=2))
        assert result(facts(docker=d), "docker.disk").status is Status.FAIL

    def test_fail_without_reclaimable_suggests_prune_or_data_root(self):
        d = docker(root_dir=disk("/var/lib/docker", free_gib=1, total_gib=100))
        r = result(facts(docker=d), "docker.disk")
        assert r.fix.startswith("docker system prune") and "data-root" in r.fix

    def test_policy_thresholds(self):
        r = result(facts(), "docker.disk", Policy(disk_fail_gib=100_000, disk_warn_gib=100_000))
        assert r.status is Status.FAIL

    def test_remote_daemon_is_skipped(self):
        d = docker(local=False, root_dir=None, endpoint=Endpoint(url="tcp://10.0.0.2:2376"))
        r = result(facts(docker=d), "docker.disk")
        assert r.status is Status.SKIP and "not on this host" in r.summary

    def test_unreadable_is_error(self):
        d = docker(root_dir=disk("/var/lib/docker").__class__(path="/var/lib/docker", error="EACCES"))
        assert result(facts(docker=d), "docker.disk").status is Status.ERROR


class TestLogging:
    def test_rotated(self):
        r = result(facts(), "docker.logging")
        assert r.status is Status.PASS and "100m" in r.summary

    def test_unrotated_json_file_warns_with_the_fix_command_not_a_fragment(self):
        d = docker(config=DaemonConfig(path="/etc/docker/daemon.json", found=False))
        r = result(facts(docker=d), "docker.logging")
        assert r.status is Status.WARN
        assert "/etc/docker/daemon.json" in r.summary and "absent" in r.summary
        assert r.fix.startswith('sudo "$(command -v mldoctor)" fix docker.logging --yes --restart')
        assert "{" not in r.fix and '"log-opts"' not in r.fix
        manual = next(line for line in r.details if line.startswith("by hand"))
        assert '"max-size": "100m"' in manual and "sudo systemctl restart docker" in manual

    def test_fix_as_root_has_no_sudo(self):
        root = host(user=UserFacts(uid=0, name="root", active_groups=["root"], member_of=["root"]), systemd=False)
        d = docker(config=DaemonConfig(path="/etc/docker/daemon.json", found=True))
        r = result(facts(host=root, docker=d), "docker.logging")
        assert r.fix.startswith("mldoctor fix docker.logging --yes --restart")
        assert "sudo" not in r.fix and "sudo" not in " ".join(r.details)
        assert "service docker restart" in " ".join(r.details)

    def test_invalid_config_defers_to_docker_config(self):
        d = docker(config=DaemonConfig(path="/etc/docker/daemon.json", found=True, json_error="x", error="invalid"))
        r = result(facts(docker=d), "docker.logging")
        assert r.status is Status.SKIP and r.blocked_by == "docker.config"

    def test_rotation_from_command_line(self):
        cfg = DaemonConfig(path="/etc/docker/daemon.json", command_line=["dockerd", "--log-opt", "max-size=10m"])
        assert result(facts(docker=docker(config=cfg)), "docker.logging").status is Status.PASS

    def test_local_driver_rotates(self):
        d = docker(daemon=daemon(logging_driver="local"), config=DaemonConfig())
        assert result(facts(docker=d), "docker.logging").status is Status.PASS

    def test_remote_daemon_skips(self):
        assert result(facts(docker=docker(config=None)), "docker.logging").status is Status.SKIP

    def test_rootless_fix_uses_user_config(self):
        cfg = DaemonConfig(path="/home/alice/.config/docker/daemon.json")
        d = docker(flavour="rootless", config=cfg, config_path=cfg.path)
        r = result(facts(docker=d), "docker.logging")
        assert r.fix.startswith("mldoctor fix docker.logging") and "/home/alice/.config/docker/daemon.json" in r.fix
        assert "systemctl --user restart docker" in " ".join(r.details)


ROOT = UserFacts(uid=0, name="root", active_groups=["root"], member_of=["root"])
STARTED = 1_800_000_000.0


def running(**process) -> DaemonProcess:
    return DaemonProcess(**{"pid": 4242, "command_line": ["/usr/bin/dockerd"], "started_at": STARTED, **process})


class TestConfig:
    def config(self, **changes) -> DaemonConfig:
        return DaemonConfig(
            **{"path": "/etc/docker/daemon.json", "found": True, "modified_at": STARTED - 60, **changes}
        )

    def test_valid_and_applied(self):
        r = result(
            facts(docker=docker(config=self.config(), process=running(systemd_unit="docker.service"))), "docker.config"
        )
        assert r.status is Status.PASS and "/etc/docker/daemon.json" in r.summary

    def test_absent_passes(self):
        r = result(facts(docker=docker(config=self.config(found=False))), "docker.config")
        assert r.status is Status.PASS and "absent" in r.summary

    def test_malformed_fails_naming_file_and_error(self):
        cfg = self.config(json_error="Expecting value: line 1 column 1 (char 0)", error="invalid JSON")
        r = result(facts(docker=docker(config=cfg, process=running())), "docker.config")
        assert r.status is Status.FAIL
        assert "/etc/docker/daemon.json" in r.summary and "line 1 column 1" in r.summary
        assert "will not start again after its next restart" in r.summary
        assert r.fix.startswith("python3 -m json.tool /etc/docker/daemon.json") and "no restart needed" in r.fix

    def test_malformed_with_a_backup_restores_it(self):
        cfg = self.config(json_error="x", error="invalid", backups=["/etc/docker/daemon.json.mldoctor-backup-1"])
        r = result(facts(host=host(user=ROOT), docker=docker(config=cfg, process=running())), "docker.config")
        assert r.fix.startswith("cp -p /etc/docker/daemon.json.mldoctor-backup-1 /etc/docker/daemon.json")

    def test_malformed_is_named_when_the_daemon_is_down(self):
        cfg = self.config(json_error="Expecting ',' delimiter", error="invalid JSON")
        d = down("missing_socket", config=cfg)
        daemon_result = result(facts(docker=d), "docker.daemon")
        assert daemon_result.status is Status.FAIL and "/etc/docker/daemon.json" in daemon_result.summary
        r = result(facts(docker=d), "docker.config")
        assert r.status is Status.FAIL and "cannot start" in r.summary

    def test_edited_after_start_warns_with_this_daemons_restart(self):
        cfg = self.config(modified_at=STARTED + 30)
        d = docker(config=cfg, process=running(systemd_unit="docker.service"))
        r = result(facts(docker=d), "docker.config")
        assert r.status is Status.WARN and "edited but not applied yet: restart to apply" in r.summary
        assert r.fix == "sudo systemctl restart docker.service"

    def test_edited_restart_by_init_script_as_root(self):
        d = docker(config=self.config(modified_at=STARTED + 30), process=running(init_script=True))
        r = result(facts(host=host(user=ROOT, systemd=False), docker=d), "docker.config")
        assert r.fix == "service docker restart"

    def test_edited_restart_by_hand_reruns_its_command_line(self):
        process = running(command_line=["dockerd", "--config-file", "/srv/d.json"])
        d = docker(config=self.config(path="/srv/d.json", modified_at=STARTED + 30), process=process)
        r = result(facts(host=host(user=ROOT), docker=d), "docker.config")
        assert r.fix.startswith("sh -c 'kill 4242 && while kill -0 4242")
        assert "setsid dockerd --config-file /srv/d.json" in r.fix

    def test_remote_daemon_skips(self):
        r = result(facts(docker=docker(config=None, local=False)), "docker.config")
        assert r.status is Status.SKIP


class TestRenderedForThisHost:
    def test_no_sudo_as_root(self):
        root = host(user=ROOT, systemd=False)
        r = result(facts(host=root, docker=down("missing_socket")), "docker.daemon")
        assert r.fix == "service docker start"

    def test_not_in_group_as_root_has_no_sudo_and_user_keeps_it(self):
        assert result(facts(host=host(user=ROOT), docker=down("missing_socket")), "docker.daemon").fix == (
            "systemctl enable --now docker"
        )
        assert result(facts(docker=down("missing_socket")), "docker.daemon").fix.startswith("sudo ")


class TestCompose:
    def test_plugin(self):
        assert result(facts(), "docker.compose").status is Status.PASS

    def test_v1_standalone_warns(self):
        d = docker(cli=CliFacts(path="/usr/bin/docker", version="24.0.7", compose_standalone="1.29.2"))
        r = result(facts(docker=d), "docker.compose")
        assert r.status is Status.WARN and "end-of-life" in r.summary

    def test_v2_standalone_passes(self):
        d = docker(cli=CliFacts(path="/usr/bin/docker", version="24.0.7", compose_standalone="2.24.0"))
        assert result(facts(docker=d), "docker.compose").status is Status.PASS

    def test_none_warns(self):
        d = docker(cli=CliFacts(path="/usr/bin/docker", version="24.0.7"))
        r = result(facts(docker=d), "docker.compose")
        assert r.status is Status.WARN and r.fix.startswith("sudo apt-get install -y docker-compose-plugin")

    def test_debian_s_own_docker_is_not_told_to_apt_install_a_package_debian_lacks(self):
        """Debian 12's docker.io (20.10.24+dfsg1): `docker-compose-plugin` is only in Docker's repository."""
        d = docker(
            cli=CliFacts(path="/usr/bin/docker", version="20.10.24"), daemon=daemon(server_version="20.10.24+dfsg1")
        )
        r = result(facts(docker=d), "docker.compose")
        assert r.status is Status.WARN and "apt-get" not in r.fix
        assert r.fix.startswith("install Compose v2 as a CLI plugin: https://docs.docker.com/compose/install/linux/")


class TestNetwork:
    """docker.network: the default bridge every plain `docker run` joins (the probe itself runs without one)."""

    @staticmethod
    def with_bridge(**changes):
        from mldoctor.facts.docker import BridgeFacts

        bridge = BridgeFacts(found=True, interface="docker0", subnet="172.17.0.0/16", interface_present=True)
        return docker(bridge=replace(bridge, **changes))

    def test_a_present_bridge_passes(self):
        r = result(facts(docker=self.with_bridge()), "docker.network")
        assert (r.status, r.summary) == (Status.PASS, "default bridge docker0 172.17.0.0/16")

    def test_the_dns_containers_get_is_named_when_it_passes(self):
        bridge = self.with_bridge(resolv_conf="/etc/resolv.conf", nameservers=["10.0.0.2"])
        r = result(facts(docker=bridge), "docker.network")
        assert r.status is Status.PASS and r.summary.endswith("; DNS 10.0.0.2 from /etc/resolv.conf")

    @pytest.mark.parametrize("local", [["127.0.0.1"], ["127.0.1.1"], ["::1", "127.0.0.1"]])
    def test_only_local_resolvers_warn_that_containers_get_the_fallback_dns(self, local):
        """dnsmasq on 127.0.0.1, NetworkManager's 127.0.1.1: dockerd drops loopback servers, falls back to 8.8.8.8."""
        d = self.with_bridge(resolv_conf="/etc/resolv.conf", nameservers=local)
        r = result(facts(docker=d), "docker.network")
        assert r.status is Status.WARN and "fallback DNS 8.8.8.8 and 8.8.4.4" in r.summary
        assert ", ".join(local) in r.summary
        assert r.fix.startswith('add "dns": [the DNS servers of your network] to /etc/docker/daemon.json, then: ')
        assert r.effects == ["restarts-docker"]

    def test_a_daemon_with_its_own_dns_or_one_real_server_passes(self):
        local = self.with_bridge(resolv_conf="/etc/resolv.conf", nameservers=["127.0.0.1"])
        configured = replace(local, config=replace(local.config, settings={"dns": ["10.0.0.2"]}))
        assert result(facts(docker=configured), "docker.network").status is Status.PASS
        flag = replace(local, config=replace(local.config, command_line=["dockerd", "--dns=10.0.0.2"]))
        assert result(facts(docker=flag), "docker.network").status is Status.PASS
        mixed = self.with_bridge(resolv_conf="/etc/resolv.conf", nameservers=["127.0.0.1", "10.0.0.2"])
        assert result(facts(docker=mixed), "docker.network").status is Status.PASS

    def test_a_deleted_docker0_fails_with_the_restart_of_this_daemon(self):
        r = result(facts(docker=self.with_bridge(interface_present=False)), "docker.network")
        assert r.status is Status.FAIL and "could not find bridge docker0" in r.summary
        assert r.fix.startswith("sudo systemctl restart docker")
        sysv = result(
            facts(docker=self.with_bridge(interface_present=False), host=host(systemd=False)), "docker.network"
        )
        assert sysv.fix.startswith("sudo service docker restart")

    def test_bridge_none_warns_and_no_bridge_otherwise_fails(self):
        from mldoctor.engine.daemon import DaemonProcess

        none = docker(
            bridge=replace(self.with_bridge().bridge, found=False),
            process=DaemonProcess(1, ["dockerd", "--bridge=none"]),
        )
        assert result(facts(docker=none), "docker.network").status is Status.WARN
        missing = docker(bridge=replace(self.with_bridge().bridge, found=False))
        assert result(facts(docker=missing), "docker.network").status is Status.FAIL

    def test_ip_forwarding_off_warns(self):
        d = replace(self.with_bridge(), daemon=daemon(warnings=["WARNING: IPv4 forwarding is disabled"]))
        r = result(facts(docker=d), "docker.network")
        assert r.status is Status.WARN and "net.ipv4.ip_forward" in r.fix

    def test_the_real_daemon_s_bridge_is_read(self):
        """On this machine's daemon (when one answers): docker0 found and present, in this network namespace."""
        from mldoctor.facts import docker as docker_facts

        gathered = docker_facts.gather(5)
        if not gathered.connection.ok:
            pytest.skip("no Docker daemon here: bash scripts/ci/start-docker.sh")
        assert gathered.bridge is not None and gathered.bridge.found and gathered.bridge.interface == "docker0"
        assert gathered.bridge.interface_present is True


def test_an_api_open_without_tls_fails():
    warning = "WARNING: API is accessible on http://0.0.0.0:2375 without encryption."
    r = result(
        facts(docker=docker(daemon=daemon(warnings=[warning, "WARNING: No swap limit support"]))), "docker.warnings"
    )
    assert r.status is Status.FAIL and "root on this host" in r.summary and "--tlsverify" in r.fix
    ok = result(facts(docker=docker(daemon=daemon(warnings=["WARNING: No swap limit support"]))), "docker.warnings")
    assert ok.status is Status.PASS and ok.details == ["WARNING: No swap limit support"]


class TestWithoutSudo:
    def test_not_in_group_without_sudo_is_for_root(self):
        user = UserFacts(uid=1001, name="bob", active_groups=["bob"], member_of=["bob"])
        d = docker(connection=down("permission").connection, daemon=None)
        r = result(facts(host=host(user=user, sudo=False), docker=d), "docker.permission")
        assert r.fix == "as root: usermod -aG docker bob   # then log out and back in"
        assert r.steps == [Step("as root: usermod -aG docker bob", as_root=True, note="then log out and back in")]
        assert r.effects == ["relogin"]

    def test_with_sudo_or_unknown_keeps_it(self):
        user = UserFacts(uid=1001, name="bob", active_groups=["bob"], member_of=["bob"])
        for sudo in (True, None):
            d = docker(connection=down("permission").connection, daemon=None)
            r = result(facts(host=host(user=user, sudo=sudo), docker=d), "docker.permission")
            assert r.fix.startswith("sudo usermod") and r.steps[0].as_root


def test_a_refused_remote_daemon_is_not_fixed_by_restarting_this_host_s():
    """DOCKER_HOST at another daemon: restarting the local one would stop its containers and fix nothing."""
    remote = down("refused", endpoint=Endpoint(url="tcp://10.0.0.5:2376", source="DOCKER_HOST"), socket=None)
    r = result(facts(docker=remote), "docker.daemon")
    assert r.status is Status.FAIL and r.fix.startswith("unset DOCKER_HOST") and "restart" not in r.fix


class TestResolvConf:
    """Where dockerd reads a default-bridge container's DNS servers from (facts.docker.resolv_conf)."""

    def test_the_host_s_file(self, tmp_path):
        from mldoctor.facts.docker import resolv_conf

        (tmp_path / "etc").mkdir()
        (tmp_path / "etc/resolv.conf").write_text(
            "# generated\nsearch example.org\nnameserver 10.0.0.2\nnameserver ::1\n"
        )
        assert resolv_conf(f"{tmp_path}/") == ("/etc/resolv.conf", ["10.0.0.2", "::1"])

    def test_systemd_resolved_s_stub_means_its_upstream_list(self, tmp_path):
        from mldoctor.facts.docker import resolv_conf

        (tmp_path / "etc").mkdir()
        (tmp_path / "etc/resolv.conf").write_text("nameserver 127.0.0.53\noptions edns0 trust-ad\n")
        assert resolv_conf(f"{tmp_path}/") == ("/etc/resolv.conf", ["127.0.0.53"])  # no upstream file: the stub
        (tmp_path / "run/systemd/resolve").mkdir(parents=True)
        (tmp_path / "run/systemd/resolve/resolv.conf").write_text("nameserver 192.168.1.1\n")
        assert resolv_conf(f"{tmp_path}/") == ("/run/systemd/resolve/resolv.conf", ["192.168.1.1"])

    def test_unreadable_is_unknown(self, tmp_path):
        from mldoctor.facts.docker import resolv_conf

        assert resolv_conf(f"{tmp_path}/") == ("/etc/resolv.conf", None)
