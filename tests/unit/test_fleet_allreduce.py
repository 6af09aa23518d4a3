"""`mldoctor fleet run --slurm --allreduce`: the judgement on fixture figures (pure), the rounds of pairs, what
each node's task reads from Slurm and starts, the verdict in the fleet report, and the whole run through a
stand-in srun (the real one, with the real gloo all-reduce in the probe image, is in
tests/integration/test_fleet_slurm.py).
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from purity import pure
from test_fleet import node_report

from mldoctor.fleet import allreduce_program, allreduce_task
from mldoctor.fleet.aggregate import ALLREDUCE_CHECK, FleetPolicy, NodeState, aggregate, exit_code
from mldoctor.fleet.allreduce import AllreduceRun, Figure, NodeResult, judge, node_result
from mldoctor.fleet.document import Document
from mldoctor.fleet.output import renderer
from mldoctor.fleet.slurm import allreduce_command
from mldoctor.model import Status

REPO = Path(__file__).parents[2]
MIB4 = 4 << 20


def figure(busbw: float, ok: bool = True) -> Figure:
    return Figure(busbw, busbw, MIB4 / busbw / 1e9, ok)


def results(pairs: dict[tuple[str, str], float], whole: float = 1.0, **errors: str) -> tuple[NodeResult, ...]:
    """Each node's result as its rank reports it: the whole-set figure and its own pairs (both nodes of a pair
    report the same figure: the slowest rank's time)."""
    nodes = sorted({n for pair in pairs for n in pair} | set(errors))
    out = []
    for node in nodes:
        if node in errors:
            out.append(NodeResult(node, "init", errors[node]))
            continue
        mine = tuple((b if a == node else a, figure(v)) for (a, b), v in pairs.items() if node in (a, b))
        out.append(NodeResult(node, "done", None, "gloo", "cpu", MIB4, 5, "2.13.0+cpu", figure(whole), mine))
    return tuple(out)


def all_pairs(nodes: list[str], busbw: float = 1.0, **slow: float) -> dict[tuple[str, str], float]:
    """Every pair at `busbw`, except those involving a node named in `slow` (which gets that figure)."""
    pairs = {}
    for i, a in enumerate(nodes):
        for b in nodes[i + 1 :]:
            pairs[a, b] = min([busbw, *(v for n, v in slow.items() if n in (a, b))])
    return pairs


NODES5 = ["n1", "n2", "n3", "n4", "n5"]


def test_a_node_in_two_slow_pairs_is_the_suspect():
    pairs = all_pairs(NODES5, 10.0, n3=4.0)  # n3's four pairs at 0.4x; the six others at 10 GB/s
    with pure():
        verdict = judge(AllreduceRun(results(pairs, whole=3.9), tuple(NODES5), 4.2), slow_ratio=0.8)
    assert [s.node for s in verdict.suspects] == ["n3"]
    [suspect] = verdict.suspects
    assert len(suspect.pairs) == 4 and all(p.slow and "n3" in (p.a, p.b) for p in suspect.pairs)
    assert verdict.median_pair_gbps == 10.0
    assert len(verdict.pairs) == 10 and sum(p.slow for p in verdict.pairs) == 4
    assert verdict.status is Status.WARN and "suspect node: n3" in verdict.summary
    cells = verdict.cells()
    assert cells["n3"][0] is Status.WARN and "in 4 slow all-reduce pairs" in cells["n3"][1]
    assert {n: s for n, (s, _) in cells.items() if n != "n3"} == dict.fromkeys(["n1", "n2", "n4", "n5"], Status.PASS)


def test_exactly_two_slow_pairs_make_the_suspect_and_their_other_nodes_are_not():
    """d is slow with a and with b (its link to c happens to hold up): two slow pairs name d; a and b, in one slow
    pair each, are not suspects."""
    pairs = {("a", "b"): 10.0, ("a", "c"): 10.0, ("b", "c"): 10.0, ("a", "d"): 4.0, ("b", "d"): 4.0, ("c", "d"): 9.0}
    with pure():
        verdict = judge(AllreduceRun(results(pairs, whole=4.0), ("a", "b", "c", "d")))
    assert verdict.median_pair_gbps == 9.5
    assert [(p.a, p.b) for p in verdict.pairs if p.slow] == [("a", "d"), ("b", "d")]
    assert [(s.node, len(s.pairs)) for s in verdict.suspects] == [("d", 2)]
    assert {n: s for n, (s, _) in verdict.cells().items()} == {"a": Status.PASS, "b": Status.PASS,
                                                                "c": Status.PASS, "d": Status.WARN}  # fmt: skip


def test_one_slow_pair_names_no_suspect():
    """A pair alone cannot say which of its two nodes is slow: a node must be in two slow pairs."""
    pairs = all_pairs(["a", "b", "c", "d"], 10.0)
    pairs["a", "b"] = 3.0
    verdict = judge(AllreduceRun(results(pairs, whole=9.0), ("a", "b", "c", "d")))
    assert [p for p in verdict.pairs if p.slow] == [verdict.pairs[0]] and verdict.pairs[0].ratio == pytest.approx(0.3)
    assert verdict.suspects == () and verdict.status is Status.PASS


def test_a_slow_ratio_is_cut_not_rounded_where_it_is_shown():
    pairs = {("a", "b"): 1.0, ("a", "c"): 0.797, ("b", "c"): 1.2}
    verdict = judge(AllreduceRun(results(pairs)), slow_ratio=0.8)
    slow = next(p for p in verdict.pairs if p.slow)
    assert (slow.a, slow.b, slow.shown_ratio) == ("a", "c", "0.79") and "= 0.79x the median pair" in slow.describe()


def test_three_healthy_nodes_give_three_pairs_and_the_whole_set_figure():
    pairs = {("node1", "node2"): 0.97, ("node1", "node3"): 0.81, ("node2", "node3"): 0.72}
    verdict = judge(AllreduceRun(results(pairs, whole=0.75), ("node1", "node2", "node3"), 5.5))
    assert [(p.a, p.b, p.busbw_gbps) for p in verdict.pairs] == [(*k, v) for k, v in pairs.items()]
    assert verdict.whole.busbw_gbps == 0.75 and verdict.status is Status.PASS and verdict.suspects == ()
    assert verdict.summary == "gloo on the CPU across 3 nodes: busbw 0.75 GB/s"
    assert (verdict.backend, verdict.bytes, verdict.iters, verdict.seconds) == ("gloo", MIB4, 5, 5.5)


def test_the_whole_set_below_the_expected_figure_warns():
    verdict = judge(AllreduceRun(results(all_pairs(NODES5, 40.0), whole=30.0)), min_busbw_gbps=45.0)
    assert verdict.status is Status.WARN and "below the expected 45 GB/s (0.67x)" in verdict.summary
    assert all(status is Status.PASS for status, _ in verdict.cells().values())  # the fabric, not a node


def test_wrong_sums_make_a_pair_bad():
    pairs = all_pairs(["a", "b", "c", "d"], 10.0)
    base = results(pairs)
    broken = [
        NodeResult(**{**{f: getattr(r, f) for f in r.__slots__}, "pairs": tuple(
            (peer, Figure(f.busbw_gbps, f.algbw_gbps, f.seconds, ok=False) if "c" in (r.node, peer) else f)
            for peer, f in r.pairs)})
        for r in base
    ]  # fmt: skip
    verdict = judge(AllreduceRun(tuple(broken)))
    assert [s.node for s in verdict.suspects] == ["c"]
    assert "wrong sums" in verdict.suspects[0].describe()


def test_a_node_without_a_result_is_an_error_and_its_pairs_are_not_measured():
    pairs = {("a", "b"): 5.0}
    run = AllreduceRun((*results(pairs), NodeResult("c", "init", "RuntimeError: timed out")), ("a", "b", "c", "d"))
    verdict = judge(run)
    assert dict(verdict.failed) == {
        "c": "RuntimeError: timed out (stage init)",
        "d": "no result came (the task hung or never started)",
    }
    assert verdict.status is Status.ERROR
    assert [(p.a, p.b) for p in verdict.pairs if p.busbw_gbps is None] == [("a", "c"), ("a", "d"), ("b", "c"),
                                                                          ("b", "d"), ("c", "d")]  # fmt: skip
    assert verdict.cells()["c"][0] is Status.ERROR


def test_a_run_that_never_started_is_an_error_on_every_node():
    verdict = judge(AllreduceRun((), ("a", "b"), 0.0, "cannot run srun: No such file or directory"))
    assert verdict.whole is None and verdict.status is Status.ERROR
    assert verdict.summary == (
        "the all-reduce across 2 nodes did not complete; a: cannot run srun: No such file or directory"
    )
    assert {s for s, _ in verdict.cells().values()} == {Status.ERROR}


def test_a_node_result_is_untrusted_input():
    data = {
        "node": "n1",
        "stage": "done" * 100,
        "error": None,
        "backend": "gloo",
        "bytes": -5,
        "iters": "x",
        "whole": {"busbw_gbps": float("nan"), "algbw_gbps": 1, "seconds": 1},
        "pairs": [
            {"peer_node": "n2", "busbw_gbps": 1.5, "algbw_gbps": 1.5, "seconds": 0.003, "ok": True},
            {"peer_node": "bad name; rm -rf /", "busbw_gbps": 1.0, "algbw_gbps": 1.0, "seconds": 1},
            {"peer_node": "n1", "busbw_gbps": 1.0, "algbw_gbps": 1.0, "seconds": 1},
            {"peer_node": "n3", "busbw_gbps": True, "algbw_gbps": 1.0, "seconds": 1},
            "not a pair",
        ],
    }
    result = node_result(Document("srun:n1", data, name_hint="n1"))
    assert result.pairs == (("n2", Figure(1.5, 1.5, 0.003, True)),)
    assert result.whole is None and result.bytes == 0 and result.iters == 0 and len(result.stage) <= 40
    lost = node_result(Document("srun:n2", error="on the node: cannot run docker", name_hint="n2"))
    assert (lost.node, lost.error) == ("n2", "on the node: cannot run docker")


def test_the_verdict_is_in_the_fleet_report_and_names_the_suspect():
    reports = [Document(f"{n}.json", node_report(n)) for n in NODES5]
    run = AllreduceRun(results(all_pairs(NODES5, 10.0, n3=4.0), whole=3.9), tuple(NODES5), 4.2)
    fleet = aggregate(reports, FleetPolicy(), allreduce=run)
    assert fleet.checks[-1] == ALLREDUCE_CHECK
    states = {row.node: row.state for row in fleet.rows}
    assert states["n3"] is NodeState.WARN and states["n1"] is NodeState.PASS
    assert exit_code(fleet) == 0  # a suspect is a WARN: looked at, not drained
    data = json.loads(renderer("json")(fleet))
    assert data["allreduce"]["suspects"][0]["node"] == "n3"
    assert data["allreduce"]["whole"]["busbw_gbps"] == 3.9 and len(data["allreduce"]["pairs"]) == 10
    assert data["policy"]["allreduce_slow_ratio"] == 0.8
    table = renderer("table")(fleet)
    assert "whole set: WARN: gloo on the CPU across 5 nodes: busbw 3.9 GB/s; suspect node: n3" in table
    assert "    n1 - n3  4 GB/s  0.40x  SLOW" in table and "suspect: n3 (in 4 slow all-reduce pairs:" in table
    markdown = renderer("markdown")(fleet)
    assert "| n1 – n3 | 4 | 0.40 | slow |" in markdown and "- n3: in 4 slow all-reduce pairs" in markdown
    families = {f.name: f for f in text_string_to_metric_families(renderer("prometheus")(fleet))}
    busbw = {tuple(sorted(s.labels.items())): s.value for s in families["mldoctor_fleet_allreduce_busbw_gbps"].samples}
    assert busbw[(("scope", "all"),)] == 3.9 and busbw[(("a", "n1"), ("b", "n3"), ("scope", "pair"))] == 4.0
    assert [s.labels for s in families["mldoctor_fleet_allreduce_suspect"].samples] == [{"node": "n3"}]
    for name in ("junit", "html"):  # the fleet.allreduce cell, as every fleet check's
        assert "in 4 slow all-reduce pairs" in renderer(name)(fleet)
    page = renderer("html")(fleet)
    assert '<td class="WARN" title="n1-n3 4 GB/s = 0.40x the median pair">4</td>' in page
    assert '<td class="x" title="n1-n2 10 GB/s = 1.00x the median pair">10</td>' in page


def test_a_node_whose_all_reduce_failed_makes_the_fleet_incomplete():
    reports = [Document(f"{n}.json", node_report(n)) for n in ("a", "b")]
    run = AllreduceRun(results({}, b="docker: no such image"), ("a", "b"))
    fleet = aggregate(reports, FleetPolicy(), allreduce=run)
    states = {row.node: row.state for row in fleet.rows}
    assert states == {"a": NodeState.INCOMPLETE, "b": NodeState.INCOMPLETE}
    assert exit_code(fleet) == 3


@pytest.mark.parametrize("world", range(2, 12))
def test_the_rounds_hold_every_pair_once_and_each_node_once_per_round(world):
    schedule = allreduce_program.rounds(world)
    pairs = [pair for pairs in schedule for pair in pairs]
    assert sorted(pairs) == [(a, b) for a in range(world) for b in range(a + 1, world)]
    for pairs_of_round in schedule:
        ranks = [rank for pair in pairs_of_round for rank in pair]
        assert len(ranks) == len(set(ranks))
    assert len(schedule) == (world - 1 if world % 2 == 0 else world)


def test_the_program_parses_on_python_3_8_and_imports_nothing_outside_the_standard_library():
    source = Path(allreduce_program.__file__).read_text(encoding="utf-8")
    tree = ast.parse(source, feature_version=(3, 8))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported - {"torch", "__future__"} <= set(sys.stdlib_module_names)


def test_the_program_without_settings_prints_one_line_saying_what_is_missing():
    env = {"PATH": os.environ["PATH"]}
    done = subprocess.run([sys.executable, allreduce_program.__file__], capture_output=True, text=True, env=env,
                          timeout=60)  # fmt: skip
    [line] = [line for line in done.stdout.splitlines() if line]
    data = json.loads(line)
    assert data["schema"] == "mldoctor-fleet-allreduce" and data["whole"] is None
    assert data["error"] == "settings: MLDOCTOR_ALLREDUCE_RANK is not set (nor SLURM_PROCID, RANK)"


SLURM = {"SLURM_PROCID": "2", "SLURM_NTASKS": "3", "SLURM_STEP_NODELIST": "gpu[07-09]", "SLURM_JOB_ID": "51",
         "SLURM_STEP_ID": "1"}  # fmt: skip


def test_the_task_reads_its_rank_and_the_master_from_slurm():
    resolved = []
    where = allreduce_task.placement(SLURM, lambda node: resolved.append(node) or "10.0.0.7")
    assert (where.rank, where.world, where.master, where.nodes) == (2, 3, "10.0.0.7", ("gpu07", "gpu08", "gpu09"))
    assert resolved == ["gpu07"] and where.port == allreduce_task.FIRST_PORT + 51 * 16 + 1
    assert where.peer == "10.0.0.7"  # a rank finds its interface by the route to the master
    mine = allreduce_task.placement({**SLURM, "MASTER_ADDR": "10.1.1.1", "MASTER_PORT": "12345"}, pytest.fail)
    assert (mine.master, mine.port) == ("10.1.1.1", 12345)


def test_the_master_finds_its_interface_by_another_node_not_by_its_own_name():
    """On node 0, its own name resolves to Debian's 127.0.1.1 alias: gloo would listen on lo, out of the others'
    reach. The route to the second node names the interface they reach it on."""
    addresses = {"gpu07": "127.0.1.1", "gpu08": "10.0.0.8"}
    where = allreduce_task.placement({**SLURM, "SLURM_PROCID": "0"}, addresses.__getitem__)
    assert (where.master, where.peer) == ("127.0.1.1", "10.0.0.8")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "not a Slurm task: SLURM_PROCID and SLURM_NTASKS are not set (run it through srun)"),
        ({**SLURM, "SLURM_STEP_NODELIST": "gpu[09-07]"}, "the step's node list cannot be read: a bad range: '09-07'"),
        ({**SLURM, "MASTER_PORT": "99999"}, "MASTER_PORT='99999' is not a port"),
    ],
)
def test_a_task_outside_slurm_or_with_a_bad_setting_says_why(env, message):
    with pytest.raises(allreduce_task.TaskError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        allreduce_task.placement(env, lambda node: "10.0.0.7")


def test_the_interface_towards_the_master_is_found():
    assert allreduce_task.interface_towards("127.0.0.1", 29500) == "lo"
    assert allreduce_task.interface_towards("not an address", 29500) is None


def test_the_program_environment_names_the_interface_unless_the_node_chose_one():
    where = allreduce_task.Placement(1, 3, "127.0.0.1", 29555)
    env = allreduce_task.program_environment({"NCCL_IB_HCA": "mlx5_0", "HOME": "/root"}, "node2", where, 50)
    assert env["GLOO_SOCKET_IFNAME"] == env["NCCL_SOCKET_IFNAME"] == "lo" and env["NCCL_IB_HCA"] == "mlx5_0"
    assert env["MLDOCTOR_ALLREDUCE_RANK"] == "1" and env["MLDOCTOR_ALLREDUCE_SECONDS"] == "50" and "HOME" not in env
    chosen = allreduce_task.program_environment({"NCCL_SOCKET_IFNAME": "ib0"}, "node2", where, 50)
    assert chosen["NCCL_SOCKET_IFNAME"] == "ib0" and "GLOO_SOCKET_IFNAME" not in chosen


def test_the_container_gets_the_host_network_and_keeps_the_rest_of_the_hardening():
    command = allreduce_task.container_command("img:cpu", "mldoctor-allreduce-x", {"A": "1"}, "print(1)")
    text = " ".join(command)
    assert "--network host" in text and "--cap-drop ALL" in text and "--security-opt no-new-privileges" in text
    assert "--rm --pull never --name mldoctor-allreduce-x --label mldoctor.allreduce=1" in text
    assert command[-5:] == ["--entrypoint", "python3", "img:cpu", "-c", "print(1)"] and "-e A=1" in text


def test_the_srun_command_of_the_all_reduce_step():
    command = allreduce_command(["python", "-m", "mldoctor"], ["-N3"], "img:cpu", 120)
    assert command == [
        "srun", "--ntasks-per-node=1", "--kill-on-bad-exit=0", "--time=3", "-N3", "python", "-m", "mldoctor",
        "fleet", "allreduce-task", "--deadline", "110", "--image", "img:cpu",
    ]  # fmt: skip
    assert allreduce_command(["m"], [], None, 20)[-3:] == ["--deadline", "10", "--no-container"]
    # on the nodes the checks ran on, unless the options name the nodes themselves
    assert "--nodelist=node1,node3" in allreduce_command(["m"], ["-N2"], None, 60, ["node1", "node3"])
    for named in (["-w", "node[1-2]"], ["--nodelist=node[1-2]"], ["-wnode1"]):
        assert not any(w.startswith("--nodelist=node1,") for w in allreduce_command(["m"], named, None, 60, ["node1"]))


FAKE_SRUN = """#!/bin/bash
# stand-in for srun: drop srun's options, run the command once per node, with the rank variables srun sets
case "$*" in *allreduce-task*) if [ -n "${FAKE_REFUSE_ALLREDUCE:-}" ]; then
  echo "srun: error: Unable to allocate resources: Requested node configuration is not available" >&2; exit 1
fi;; esac
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done
rank=0
for node in node1 node2 node3; do
  SLURMD_NODENAME=$node SLURM_STEP_NODELIST='node[1-3]' SLURM_PROCID=$rank SLURM_NTASKS=3 MASTER_ADDR=127.0.0.1 \\
    "$@" &
  rank=$((rank + 1))
done
wait
"""


def fleet_run(tmp_path: Path, *args: str, **more_env: str) -> subprocess.CompletedProcess:
    srun = tmp_path / "srun"
    srun.write_text(FAKE_SRUN)
    srun.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO), **more_env}
    command = [sys.executable, "-m", "mldoctor", "fleet", "run", "--slurm", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=180)


def test_without_torch_on_the_nodes_each_node_says_so_and_the_run_is_incomplete(tmp_path):
    """--no-container on nodes whose python has no torch: the real tasks and program through a stand-in srun."""
    pytest.importorskip("mldoctor")
    try:
        import torch  # noqa: F401

        pytest.skip("torch is importable here: the nodes would run the all-reduce")
    except ImportError:
        pass
    outcome = fleet_run(tmp_path, "--allreduce", "--no-container", "--allreduce-deadline", "40", "--format", "json",
                        "--check-args", "--no-probe --skip docker")  # fmt: skip
    assert outcome.returncode == 3, outcome.stderr
    data = json.loads(outcome.stdout)
    assert data["allreduce"]["status"] == "ERROR"
    failed = dict(data["allreduce"]["failed"])
    assert sorted(failed) == ["node1", "node2", "node3"]
    assert all(
        "torch is not importable by " in why and "No module named 'torch' (stage import)" in why
        for why in failed.values()
    ), failed
    assert {n["node"]: n["checks"][ALLREDUCE_CHECK] for n in data["nodes"]} == dict.fromkeys(failed, "ERROR")
    assert "srun (all-reduce): 3 node(s) started, 3 reported" in outcome.stderr


def test_an_all_reduce_step_srun_refuses_is_an_error_on_every_node_the_checks_ran_on(tmp_path):
    outcome = fleet_run(tmp_path, "--allreduce", "--format", "json", "--check-args", "--no-probe --skip docker",
                        FAKE_REFUSE_ALLREDUCE="1")  # fmt: skip
    assert outcome.returncode == 3, outcome.stderr
    data = json.loads(outcome.stdout)
    failed = dict(data["allreduce"]["failed"])
    assert sorted(failed) == ["node1", "node2", "node3"]
    assert all(why.startswith("no node sent an all-reduce result; srun said: srun: error: Unable to allocate")
               for why in failed.values()), failed  # fmt: skip
    assert {n["node"]: n["state"] for n in data["nodes"]} == dict.fromkeys(failed, "incomplete")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ray", "--allreduce"], "--allreduce runs through srun: use it with --slurm"),
        (["--slurm", "--no-container"], "--no-container goes with --allreduce"),
        (["--slurm", "--allreduce-min-busbw", "40"], "--allreduce-min-busbw goes with --allreduce"),
        (["--slurm", "--allreduce", "--no-container", "--allreduce-image", "x"], "exclude each other"),
        (["--slurm", "--allreduce", "--allreduce-slow-ratio", "1.5"], "'1.5': use a number > 0 and <= 1"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args, message):
    done = subprocess.run([sys.executable, "-m", "mldoctor", "fleet", "run", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=60)  # fmt: skip
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_a_program_past_the_node_deadline_is_killed_with_what_it_started():
    started = time.monotonic()
    command = ["bash", "-c", "sleep 60 & echo $! > /dev/null; sleep 60"]
    with pytest.raises(allreduce_task.TaskError, match=r"^no result within the node's deadline of 1 s$"):
        allreduce_task.run_program(command, None, 1.0, os.environ)
    assert time.monotonic() - started < 10


def test_only_the_tail_of_a_chatty_program_is_kept_and_its_line_is_found():
    line = json.dumps({"schema": allreduce_program.SCHEMA, "stage": "done"})
    script = f"import sys; sys.stdout.write('x' * (3 << 20) + '\\n{{not json\\n' + {line!r} + '\\n')"
    result = allreduce_task.run_program([sys.executable, "-c", script], None, 30.0, os.environ)
    assert result == json.loads(line)


def test_a_program_with_no_result_line_says_what_it_printed_on_stderr():
    script = "import sys; print('Traceback (most recent call last):', file=sys.stderr); sys.exit(1)"
    with pytest.raises(allreduce_task.TaskError, match=r"exited 1 without a result: Traceback \(most recent"):
        allreduce_task.run_program([sys.executable, "-c", script], None, 30.0, os.environ)


FAKE_DOCKER = """#!/bin/bash
# stand-in for the docker CLI: `run` records the container's name and hangs; `rm` records what it removes
if [ "$1" = run ]; then
  while [ $# -gt 0 ] && [ "$1" != --name ]; do shift; done
  echo "run $2" >> "$FAKE_DIR/docker.log"
  exec sleep 300
fi
echo "$*" >> "$FAKE_DIR/docker.log"
"""


def test_a_task_stopped_by_srun_removes_its_container(tmp_path):
    """srun stops a step with SIGTERM: the task unwinds, kills `docker run` and removes the container by name."""
    docker = tmp_path / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}", "FAKE_DIR": str(tmp_path),
           "PYTHONPATH": str(REPO), "SLURM_PROCID": "0", "SLURM_NTASKS": "2", "MASTER_ADDR": "127.0.0.1",
           "SLURMD_NODENAME": "node1"}  # fmt: skip
    command = [sys.executable, "-m", "mldoctor", "fleet", "allreduce-task", "--deadline", "120", "--image", "img:x"]
    task = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "docker.log"
    end = time.monotonic() + 30
    while not log.exists() and time.monotonic() < end:
        time.sleep(0.1)
    task.send_signal(signal.SIGTERM)
    out, _ = task.communicate(timeout=30)
    name = log.read_text().splitlines()[0].removeprefix("run ")
    assert name.startswith("mldoctor-allreduce-")
    assert log.read_text().splitlines()[1:] == [f"rm -f {name}"]
    assert task.returncode == 128 + signal.SIGTERM and "@mldoctor-fleet node1 start" in out


def test_one_node_has_nothing_to_reduce_across():
    verdict = judge(AllreduceRun((), ("node1",)))
    assert verdict.status is Status.SKIP and verdict.cells() == {"node1": (Status.SKIP, verdict.summary)}
    assert verdict.summary == "1 node: an all-reduce across nodes needs two or more"
    fleet = aggregate(
        [Document("node1.json", node_report("node1"))], FleetPolicy(), allreduce=AllreduceRun((), ("node1",))
    )
    assert fleet.rows[0].state is NodeState.PASS and exit_code(fleet) == 0


BASE = {"MLDOCTOR_ALLREDUCE_RANK": "0", "MLDOCTOR_ALLREDUCE_WORLD": "2", "MLDOCTOR_ALLREDUCE_MASTER": "10.0.0.1",
        "MLDOCTOR_ALLREDUCE_PORT": "29500"}  # fmt: skip


@pytest.mark.parametrize(
    ("more", "message"),
    [
        ({"MLDOCTOR_ALLREDUCE_WORLD": "1"}, "rank 0 of 1: an all-reduce across nodes needs 2 to 1024 ranks"),
        ({"MLDOCTOR_ALLREDUCE_BYTES": "-5"}, "MLDOCTOR_ALLREDUCE_BYTES=-5 is not between 0 and 4294967296"),
        ({"MLDOCTOR_ALLREDUCE_ITERS": "x"}, "MLDOCTOR_ALLREDUCE_ITERS='x' is not a number"),
        ({"MLDOCTOR_ALLREDUCE_PORT": "0"}, "port 0 is out of range"),
        ({"MLDOCTOR_ALLREDUCE_MASTER": ""}, "MLDOCTOR_ALLREDUCE_MASTER is not set (nor MASTER_ADDR)"),
    ],
)
def test_the_program_refuses_settings_it_cannot_use(more, message):
    with pytest.raises(ValueError) as caught:
        allreduce_program.settings({**BASE, **more})
    assert str(caught.value) == message


def test_the_program_takes_torchs_own_names_when_its_own_are_absent():
    found = allreduce_program.settings({"RANK": "1", "WORLD_SIZE": "4", "MASTER_ADDR": "h0", "MASTER_PORT": "1234",
                                        "SLURMD_NODENAME": "gpu7"})  # fmt: skip
    assert (found["rank"], found["world"], found["master"], found["port"], found["node"]) == (1, 4, "h0", 1234, "gpu7")
