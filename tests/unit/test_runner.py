from __future__ import annotations

import pytest
from factories import down, facts

from mldoctor.facts import Facts
from mldoctor.model import Finding, Status
from mldoctor.policy import Policy
from mldoctor.rules import REGISTRY
from mldoctor.rules.registry import Check, check
from mldoctor.runner import SelectionError, build_report, evaluate, needed_sections, select


def ids(checks):
    return [c.id for c in checks]


class TestSelect:
    def test_everything_by_default(self):
        assert ids(select()) == list(REGISTRY)

    def test_exact_glob_and_prefix(self):
        assert ids(select(["docker.disk"])) == ["docker.disk"]
        assert set(ids(select(["host.*"]))) == {i for i in REGISTRY if i.startswith("host.")}
        assert ids(select(["host"])) == ids(select(["host.*"]))

    def test_skip(self):
        assert "docker.compose" not in ids(select(skip=["docker.compose"]))

    def test_unknown_pattern_is_an_error(self):
        with pytest.raises(SelectionError, match="no check matches 'dokcer'"):
            select(["dokcer"])

    def test_only_gathers_what_it_needs(self):
        assert needed_sections(select(["host.disk"])) == {"host"}


class TestEvaluate:
    def test_prerequisite_evaluated_but_not_reported(self):
        out = evaluate(select(["docker.disk"]), facts(docker=down("missing_socket")), Policy())
        assert [(r.id, r.status) for r in out] == [("docker.disk", Status.SKIP)]
        assert out[0].summary == "skipped: docker.daemon failed"

    def test_missing_section_is_error_with_reason(self):
        f = Facts(host=facts().host, errors={"docker": "gathering docker facts did not finish within 11 s"})
        (r,) = evaluate(select(["docker.cli"]), f, Policy())
        assert r.status is Status.ERROR and "did not finish within 11 s" in r.summary

    def test_crashing_rule_is_isolated(self, monkeypatch):
        def broken(facts, policy):
            raise KeyError("nope")

        monkeypatch.setitem(REGISTRY, "host.cpu", Check("host.cpu", "Host CPU", broken, ("host",)))
        out = {r.id: r for r in evaluate(select(["host"]), facts(), Policy())}
        assert out["host.cpu"].status is Status.ERROR and "KeyError" in out["host.cpu"].summary
        assert out["host.disk"].status is Status.PASS

    def test_subjects_make_ids(self, monkeypatch):
        def several(facts, policy):
            return [Finding.ok("fast", subject="bf16"), Finding.warn("slow", fix="x", subject="fp32")]

        monkeypatch.setitem(REGISTRY, "host.cpu", Check("host.cpu", "Host CPU", several, ("host",)))
        out = evaluate(select(["host.cpu"]), facts(), Policy())
        assert [(r.id, r.status) for r in out] == [("host.cpu.bf16", Status.PASS), ("host.cpu.fp32", Status.WARN)]

    def test_registry_refuses_unknown_prerequisite(self):
        with pytest.raises(ValueError, match="unregistered"):
            check("host.new", "New", requires=("host.nothing",))(lambda f, p: None)


class TestExitCodes:
    def report(self, *statuses):
        rep = build_report([], facts(), Policy())
        rep.results = [
            type("R", (), {"status": s})()
            for s in statuses  # only .status is read by counts()
        ]
        return rep

    @pytest.mark.parametrize(
        ("statuses", "strict", "code"),
        [
            ((Status.PASS, Status.SKIP), False, 0),
            ((Status.PASS, Status.WARN), False, 0),
            ((Status.PASS, Status.WARN), True, 1),
            ((Status.ERROR, Status.WARN), False, 3),
            ((Status.ERROR,), True, 3),
            ((Status.FAIL, Status.ERROR), False, 1),
            ((Status.FAIL, Status.PASS), False, 1),
        ],
    )
    def test_exit_code(self, statuses, strict, code):
        assert self.report(*statuses).exit_code(strict) == code


class TestIsolationPerFact:
    """One unreadable fact costs its own check, not its section; a fact an older report lacks is a SKIP."""

    def test_a_host_fact_that_raises_errors_only_the_checks_that_read_it(self, monkeypatch):
        from mldoctor.facts import GatherOptions, gather
        from mldoctor.facts import host as host_facts

        def unreadable():
            raise PermissionError(13, "Permission denied", "/proc/meminfo")

        monkeypatch.setattr(host_facts, "_memory", unreadable)
        gathered = gather({"host"}, GatherOptions())
        assert gathered.host is not None and gathered.host.memory is None
        assert "Permission denied" in gathered.errors["host.memory"]
        by_id = {r.id: r for r in evaluate(select(["host"]), gathered, Policy())}
        assert by_id["host.memory"].status is Status.ERROR
        assert "/proc/meminfo" in by_id["host.memory"].summary
        assert by_id["host.cpu"].status is not Status.ERROR and by_id["host.disk"].status is not Status.ERROR

    def test_a_fact_an_older_report_lacks_is_skipped_by_the_framework(self, tmp_path, capsys):
        import json

        from helpers import call

        from mldoctor.output import json as json_output

        data = json.loads(json_output.render(build_report(select(["host"]), facts(), Policy())))
        del data["facts"]["host"]["memory"]  # as written by a version that did not gather it yet
        saved = tmp_path / "old.json"
        saved.write_text(json.dumps(data))
        code, out, err = call(capsys, "check", "--facts", str(saved), "--only", "host", "--format", "json")
        results = {r["id"]: r for r in json.loads(out)["results"]}
        assert results["host.memory"]["status"] == "SKIP", results["host.memory"]
        assert results["host.memory"]["summary"] == "no host.memory facts in this report"
        assert code == 0, err
