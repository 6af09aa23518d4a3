"""`mldoctor fix`: the merge (pure) and the command (dry run, --yes, refusals, exit codes) against a config file
in a temporary directory; the facts are the factories' with the config path pointed there."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner
from factories import docker, facts, host
from helpers import result

from mldoctor.facts.docker import BACKUP_SUFFIX, DaemonConfig
from mldoctor.facts.host import UserFacts
from mldoctor.fix import command as fix_command
from mldoctor.fix.merge import Refused, indent_of, logging_edit, parse, shm_edit, size_bytes, with_log_rotation

ROOT = UserFacts(uid=0, name="root", active_groups=["root"], member_of=["root"])


class TestMerge:
    def test_absent_file_gets_driver_and_opts(self):
        edit = logging_edit("/etc/docker/daemon.json", None)
        assert json.loads(edit.after) == {"log-driver": "json-file", "log-opts": {"max-size": "100m", "max-file": "3"}}
        assert edit.changed and edit.diff().startswith("--- /dev/null")

    def test_keeps_other_keys_and_users_values(self):
        before = '{\n    "data-root": "/srv/docker",\n    "log-opts": {"max-file": "9", "labels": "x"}\n}\n'
        after = json.loads(logging_edit("/d.json", before).after)
        assert after["data-root"] == "/srv/docker"
        assert after["log-opts"] == {"max-file": "9", "labels": "x", "max-size": "100m"}
        assert after["log-driver"] == "json-file"

    def test_keeps_an_explicit_driver(self):
        assert with_log_rotation({"log-driver": "local"})["log-driver"] == "local"

    def test_keeps_the_files_indentation(self):
        before = '{\n    "debug": true\n}\n'
        assert indent_of(before) == 4 and '\n    "debug": true' in logging_edit("/d.json", before).after

    def test_empty_file_is_an_empty_config(self):
        assert parse("  \n", "/d.json") == {}

    def test_nothing_to_change(self):
        before = json.dumps(with_log_rotation({}))
        assert not logging_edit("/d.json", before).changed

    @pytest.mark.parametrize("text", ['"log-opts": {"max-size": "100m"}', "{", "[1, 2]"])
    def test_refuses_a_broken_file(self, text):
        with pytest.raises(Refused, match=r"/d\.json"):
            logging_edit("/d.json", text)


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    """docker.logging WARNs for a config file under tmp_path; the command's fact gathering is replaced by these
    facts (re-read from the file each time, as the gatherer would) and the restart by a recorder."""
    path = tmp_path / "docker" / "daemon.json"
    restarts = []

    def judge(check_id, timeout):
        from mldoctor.facts.docker import _daemon_config

        config = _daemon_config(str(path), [])
        f = facts(host=host(user=ROOT, systemd=False), docker=docker(config=config, config_path=str(path)))
        return result(f, check_id), f

    monkeypatch.setattr(fix_command, "judge", judge)
    monkeypatch.setattr(fix_command, "restart_daemon", lambda command, d, t: restarts.append(command))
    return path, restarts


def run(*args):
    return CliRunner().invoke(fix_command.command, list(args))


class TestCommand:
    def test_unknown_check_lists_the_fixable_ones(self):
        out = run("docker.daemon")
        assert out.exit_code == 2
        assert (
            out.output.strip()
            == "mldoctor fix: no fix mldoctor can apply for 'docker.daemon'; fixable: docker.logging, probe.shm"
        )

    def test_dry_run_shows_the_diff_and_writes_nothing(self, config_dir):
        path, _ = config_dir
        out = run("docker.logging")
        assert out.exit_code == 0, out.output
        assert '+  "log-opts": {' in out.output and "dry run: nothing written" in out.output
        assert not path.exists()

    def test_yes_creates_the_file(self, config_dir):
        path, restarts = config_dir
        out = run("docker.logging", "--yes")
        assert out.exit_code == 0, out.output
        assert json.loads(path.read_text())["log-opts"]["max-size"] == "100m"
        assert oct(path.stat().st_mode & 0o777) == "0o644"
        assert "restart the daemon to apply: service docker restart" in out.output and restarts == []

    def test_yes_keeps_a_backup_and_the_mode(self, config_dir):
        path, _ = config_dir
        path.parent.mkdir()
        path.write_text('{"debug": true}\n')
        path.chmod(0o600)
        out = run("docker.logging", "--yes")
        assert out.exit_code == 0, out.output
        (backup,) = [p for p in path.parent.iterdir() if BACKUP_SUFFIX in p.name]
        assert backup.read_text() == '{"debug": true}\n'
        assert json.loads(path.read_text())["debug"] is True
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        assert [p.name for p in path.parent.iterdir() if p.name.startswith(".mldoctor-")] == []

    def test_restart_runs_this_daemons_restart_and_rejudges(self, config_dir):
        _, restarts = config_dir
        out = run("docker.logging", "--yes", "--restart")
        assert out.exit_code == 0, out.output
        assert restarts == ["service docker restart"]
        assert out.output.rstrip().endswith("docker.logging: PASS json-file logs, rotated at 100m")

    def test_nothing_to_do_when_it_passes(self, config_dir):
        path, _ = config_dir
        path.parent.mkdir()
        path.write_text(json.dumps(with_log_rotation({})))
        out = run("docker.logging", "--yes")
        assert out.exit_code == 0 and out.output.startswith("nothing to do: docker.logging passes")

    def test_refuses_an_invalid_file_in_one_line(self, config_dir):
        path, _ = config_dir
        path.parent.mkdir()
        path.write_text('"log-opts": {}')
        before = path.read_text()
        out = run("docker.logging", "--yes")
        assert out.exit_code == 2
        assert len(out.output.strip().splitlines()) == 1 and str(path) in out.output and "not valid JSON" in out.output
        assert path.read_text() == before and len(os.listdir(path.parent)) == 1

    def test_not_a_regular_file_could_not(self, config_dir):
        path, _ = config_dir
        path.mkdir(parents=True)
        out = run("docker.logging", "--yes")
        assert out.exit_code in (1, 2) and str(path) in out.output


class TestShm:
    """probe.shm's fix: every container gets 16G of /dev/shm by default, unless the file already gives as much."""

    @pytest.mark.parametrize(
        ("before", "after"),
        [
            (None, "16G"),
            ('{"debug": true}', "16G"),
            ('{"default-shm-size": "64M"}', "16G"),  # the file's own too-small value is what the WARN is about
            ('{"default-shm-size": "32g"}', "32g"),  # more than enough: kept
            ('{"default-shm-size": "16GiB"}', "16GiB"),
        ],
    )
    def test_merge(self, before, after):
        edit = shm_edit("/etc/docker/daemon.json", before)
        assert json.loads(edit.after)["default-shm-size"] == after
        assert edit.changed is (before is None or after == "16G")

    @pytest.mark.parametrize(
        ("text", "size"), [("64m", 64 << 20), ("16G", 16 << 30), ("1.5GiB", 3 << 29), ("4096", 4096), ("x", None)]
    )
    def test_sizes_as_dockerd_reads_them(self, text, size):
        assert size_bytes(text) == size

    def test_the_command_merges_without_running_a_probe_and_rejudges_the_config(self, config_dir):
        path, restarts = config_dir
        out = run("probe.shm", "--yes", "--restart")
        assert out.exit_code == 0, out.output
        assert json.loads(path.read_text())["default-shm-size"] == "16G"
        assert restarts == ["service docker restart"]
        assert out.output.rstrip().endswith("then: mldoctor check --only probe.shm shows what a container gets")


def test_config_facts_record_json_error_mtime_and_backups(tmp_path):
    from mldoctor.facts.docker import _daemon_config

    path = tmp_path / "daemon.json"
    path.write_text("{")
    (tmp_path / f"daemon.json{BACKUP_SUFFIX}20261130T120000Z").write_text("{}")
    config = _daemon_config(str(path), [])
    assert isinstance(config, DaemonConfig) and config.found
    assert config.json_error and "line 1" in config.json_error
    assert config.modified_at == path.stat().st_mtime
    assert config.backups == [f"{path}{BACKUP_SUFFIX}20261130T120000Z"]
