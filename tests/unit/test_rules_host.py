from __future__ import annotations

from factories import GIB, PortFacts, disk, facts, host
from helpers import results

from mldoctor.facts.common import DiskUsage
from mldoctor.facts.host import CpuFacts, MemoryFacts
from mldoctor.model import Status
from mldoctor.policy import Policy


def one(f, check_id, policy=None):
    (r,) = results(f, check_id, policy)
    return r


class TestDisk:
    def test_pass(self):
        assert one(facts(), "host.disk").status is Status.PASS

    def test_same_filesystem_counted_once(self):
        f = facts(host=host(disks=[disk("/", device=1), disk("/home/alice", device=1), disk("/tmp", device=2)]))
        r = one(f, "host.disk")
        assert "2 filesystems checked" in r.summary
        assert len([d for d in r.details if d.startswith("/")]) == 2

    def test_worst_filesystem_decides(self):
        f = facts(host=host(disks=[disk("/", device=1), disk("/scratch", free_gib=1, total_gib=100, device=2)]))
        r = one(f, "host.disk")
        assert r.status is Status.FAIL and "/scratch" in r.summary and "du -xh" in r.fix

    def test_warn(self):
        f = facts(host=host(disks=[disk("/", free_gib=12, total_gib=100)]))
        assert one(f, "host.disk").status is Status.WARN

    def test_thresholds_from_policy(self):
        assert one(facts(), "host.disk", Policy(disk_fail_gib=10_000, disk_warn_gib=10_000)).status is Status.FAIL

    def test_all_unreadable_is_error(self):
        f = facts(host=host(disks=[DiskUsage(path="/", error="EIO")]))
        assert one(f, "host.disk").status is Status.ERROR


class TestMemory:
    def test_pass(self):
        assert one(facts(), "host.memory").status is Status.PASS

    def test_low_available_warns(self):
        f = facts(host=host(memory=MemoryFacts(total_bytes=64 * GIB, available_bytes=2 * GIB)))
        r = one(f, "host.memory")
        assert r.status is Status.WARN and "ps aux --sort=-rss" in r.fix

    def test_a_cgroup_limit_is_what_counts(self):
        """A Slurm job given 2 GiB on a 64 GiB node has 2 GiB, not 60: judged and said so."""
        memory = MemoryFacts(
            total_bytes=64 * GIB, available_bytes=60 * GIB, cgroup_limit_bytes=2 * GIB, cgroup_usage_bytes=GIB // 2
        )
        r = one(facts(host=host(memory=memory)), "host.memory")
        assert r.status is Status.WARN
        assert r.summary.startswith("1.5 GiB usable under this cgroup's 2.0 GiB limit (the host: 60.0 GiB available")
        generous = MemoryFacts(total_bytes=64 * GIB, available_bytes=60 * GIB, cgroup_limit_bytes=32 * GIB)
        assert one(facts(host=host(memory=generous)), "host.memory").status is Status.PASS


class TestCpu:
    def test_pass(self):
        assert one(facts(), "host.cpu").status is Status.PASS

    def test_few_cpus_warn(self):
        f = facts(host=host(cpu=CpuFacts(logical=2, usable=2)))
        assert one(f, "host.cpu").status is Status.WARN

    def test_cgroup_quota_counts(self):
        f = facts(host=host(cpu=CpuFacts(logical=64, usable=1.5)))
        r = one(f, "host.cpu")
        assert r.status is Status.WARN and "1.5 usable of 64" in r.summary

    def test_busy_host_warns(self):
        f = facts(host=host(cpu=CpuFacts(logical=8, usable=8, load_1m=30)))
        r = one(f, "host.cpu")
        assert r.status is Status.WARN and "busy" in r.summary


class TestShm:
    def test_pass(self):
        assert one(facts(), "host.shm").status is Status.PASS

    def test_small_shm_warns_with_remount(self):
        f = facts(host=host(shm=disk("/dev/shm", free_gib=0.06, total_gib=0.0625)))
        r = one(f, "host.shm")
        assert r.status is Status.WARN and r.fix == "sudo mount -o remount,size=8G /dev/shm"

    def test_missing_shm_warns(self):
        f = facts(host=host(shm=DiskUsage(path="/dev/shm", error="missing")))
        assert one(f, "host.shm").status is Status.WARN


class TestPort:
    def test_absent_without_ports(self):
        assert results(facts(), "host.port") == []

    def test_free(self):
        f = facts(host=host(ports=[PortFacts(port=8888, free=True)]))
        r = one(f, "host.port")
        assert r.status is Status.PASS and r.summary == "8888 free"

    def test_busy_names_the_process(self):
        f = facts(
            host=host(
                ports=[
                    PortFacts(port=8888, free=False, pid=4242, process="jupyter-lab", username="bob"),
                    PortFacts(port=6006, free=True),
                ]
            )
        )
        r = one(f, "host.port")
        assert r.status is Status.FAIL
        assert "jupyter-lab (pid 4242, user bob)" in r.summary
        assert r.fix.startswith("kill 4242")

    def test_busy_unknown_holder(self):
        f = facts(host=host(ports=[PortFacts(port=8888, free=False)]))
        assert one(f, "host.port").fix.startswith("sudo ss -ltnp 'sport = :8888'")

    def test_published_by_container(self):
        f = facts(host=host(ports=[PortFacts(port=80, free=False, pid=7, process="docker-proxy")]))
        assert "docker ps --filter publish=80" in one(f, "host.port").fix

    def test_privileged_port(self):
        f = facts(host=host(ports=[PortFacts(port=80, free=False, error="Permission denied")]))
        assert "under 1024 need root" in one(f, "host.port").fix


def test_host_disk_has_its_own_floors_when_the_policy_sets_them():
    f = facts(host=host(disks=[disk("/", free_gib=30, total_gib=100)]))
    assert one(f, "host.disk").status is Status.PASS
    strict_host = Policy(host_disk_fail_gib=50, host_disk_warn_gib=60)
    r = one(f, "host.disk", strict_host)
    assert r.status is Status.FAIL and "limits: FAIL under 50 GiB or 5%, WARN under 60 GiB or 10%" in r.details
    assert one(f, "docker.disk", strict_host).status is Status.PASS  # Docker's data-root keeps its own floors


class TestUlimit:
    """host.ulimit: the open-files and locked-memory limits a training job inherits from this shell."""

    @staticmethod
    def limits(**changes):
        from mldoctor.facts.host import LimitsFacts

        base = {"nofile_soft": 1048576, "nofile_hard": 1048576, "memlock_soft": None, "memlock_hard": None}
        return facts(host=host(limits=LimitsFacts(**(base | changes))))

    def test_generous_limits_pass(self):
        r = one(self.limits(), "host.ulimit")
        assert r.status is Status.PASS and "open files 1048576" in r.summary and "locked memory unlimited" in r.summary

    def test_the_1024_default_warns_with_a_ulimit_the_hard_limit_allows(self):
        r = one(self.limits(nofile_soft=1024, nofile_hard=20000), "host.ulimit")
        assert r.status is Status.WARN and "Too many open files" in r.summary
        assert r.fix.startswith("ulimit -n 20000")

    def test_a_low_hard_limit_needs_root_and_a_new_login(self):
        r = one(self.limits(nofile_soft=1024, nofile_hard=1024), "host.ulimit")
        assert r.status is Status.WARN and "/etc/security/limits.d/90-nofile.conf" in r.fix

    def test_locked_memory_matters_only_where_there_is_rdma(self):
        assert one(self.limits(memlock_soft=8 << 20), "host.ulimit").status is Status.PASS
        r = one(self.limits(memlock_soft=8 << 20, rdma_devices=["mlx5_0"]), "host.ulimit")
        assert r.status is Status.WARN and "8 MiB" in r.summary and "mlx5_0" in r.summary
        assert r.fix.startswith("ulimit -l unlimited")

    def test_an_older_report_without_limits_skips(self):
        r = one(facts(host=host(limits=None)), "host.ulimit")  # made before host.limits existed: the framework says so
        assert r.status is Status.SKIP and r.summary == "no host.limits facts in this report"

    def test_the_gathered_limits_are_this_process_s(self):
        import resource

        from mldoctor.facts import host as host_facts

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        gathered = host_facts._limits()
        assert gathered.nofile_soft == (None if soft == resource.RLIM_INFINITY else soft)
        assert gathered.nofile_hard == (None if hard == resource.RLIM_INFINITY else hard)


def apply_printed_fix(tmp_path, check_id: str, breakage: str) -> tuple[dict, dict]:
    """In a real bash: break the host with `breakage`, run mldoctor, run the fix it printed verbatim (eval), run
    mldoctor again; the check's result before and after."""
    import json
    import shutil
    import subprocess
    import sys

    check = f"{shutil.which('mldoctor') or sys.executable + ' -m mldoctor'} check --only {check_id} --format json"
    script = (
        f"{breakage}\n{check} > {tmp_path}/before.json\n"
        f'fix=$(python3 -c \'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["fix"])\' '
        f"{tmp_path}/before.json)\n"
        f'eval "$fix"\n{check} > {tmp_path}/after.json\n'
    )
    subprocess.run(["bash", "-c", script], check=True, timeout=120)
    before, after = (json.loads((tmp_path / f"{n}.json").read_text())["results"][0] for n in ("before", "after"))
    return before, after


def test_the_ulimit_fix_applied_verbatim_makes_the_check_pass(tmp_path):
    """For real: a shell with the 1024 default, mldoctor's printed fix run as printed, then the check passes."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 4096:
        import pytest

        pytest.skip(f"this machine's hard open-files limit is {hard}: no fix can pass here")
    before, after = apply_printed_fix(tmp_path, "host.ulimit", "ulimit -Sn 1024")
    assert before["status"] == "WARN" and before["fix"].startswith("ulimit -n")
    assert after["status"] == "PASS", after


def test_reports_carry_the_scheduler_s_node_name(monkeypatch):
    """Two Slurm nodes on one machine both said host "vm": the node name tells them apart in a fleet."""
    from mldoctor.facts import host as host_facts

    for variable in host_facts.NODE_NAME_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    assert host_facts.gather([], {}).node_name is None
    monkeypatch.setenv("SLURMD_NODENAME", "node2")
    assert host_facts.gather([], {}).node_name == "node2"
    monkeypatch.setenv("MLDOCTOR_NODE_NAME", "rack3-gpu07")
    assert host_facts.gather([], {}).node_name == "rack3-gpu07"


class TestNccl:
    @staticmethod
    def with_nccl(**variables):
        from mldoctor.facts.host import NcclEnvironment

        env = NcclEnvironment(variables, ["docker0", "eth0", "ib0", "lo", "veth12ab"], ["mlx5_0", "mlx5_1"])
        return facts(host=host(nccl=env))

    def test_nothing_set_passes(self):
        assert one(self.with_nccl(), "host.nccl").summary == "NCCL variables: none set"

    def test_an_interface_that_does_not_exist_fails_with_the_host_s_own(self):
        r = one(self.with_nccl(NCCL_SOCKET_IFNAME="ens5"), "host.nccl")
        assert r.status is Status.FAIL and "names ens5" in r.summary
        assert r.fix.startswith("export NCCL_SOCKET_IFNAME=eth0")

    def test_prefixes_exact_names_and_exclusions_follow_nccl_s_rules(self):
        for spec in ("eth", "=eth0", "^docker,lo", "ib,eth"):
            assert one(self.with_nccl(NCCL_SOCKET_IFNAME=spec), "host.nccl").status is Status.PASS, spec
        assert one(self.with_nccl(NCCL_SOCKET_IFNAME="=eth"), "host.nccl").status is Status.FAIL

    def test_a_missing_hca_and_disabled_transports_warn(self):
        r = one(self.with_nccl(NCCL_IB_HCA="mlx5_4", NCCL_P2P_DISABLE="1"), "host.nccl")
        assert r.status is Status.WARN and "mlx5_4" in r.summary and "NCCL_P2P_DISABLE=1" in r.summary
        assert "unset NCCL_P2P_DISABLE" in r.fix


def test_the_nccl_fix_applied_verbatim_makes_the_check_pass(tmp_path):
    """For real: a shell with a wrong NCCL_SOCKET_IFNAME, mldoctor's printed fix run as printed, then PASS."""
    before, after = apply_printed_fix(tmp_path, "host.nccl", "export NCCL_SOCKET_IFNAME=no-such-nic0")
    assert before["status"] == "FAIL" and before["fix"].startswith("export NCCL_SOCKET_IFNAME=")
    assert after["status"] == "PASS", after


class TestFixesForThisHost:
    """Host rules write `sudo` in their fixes; what is printed is for the user the facts were gathered as."""

    def test_a_user_without_sudo_gets_the_step_as_root(self):
        f = facts(host=host(shm=disk("/dev/shm", free_gib=0.06, total_gib=0.0625), sudo=False))
        r = one(f, "host.shm")
        assert r.fix == "as root: mount -o remount,size=8G /dev/shm" and r.steps[0].as_root

    def test_root_types_it_without_sudo(self):
        user = host().user
        root = host(shm=disk("/dev/shm", free_gib=0.06, total_gib=0.0625), user=type(user)(uid=0, name="root"))
        r = one(facts(host=root), "host.shm")
        assert r.fix == "mount -o remount,size=8G /dev/shm" and r.steps[0].as_root
