"""`mldoctor fleet k8s-manifest`: the Job and DaemonSet are valid Kubernetes objects, loaded by the `kubernetes`
client's own models (nothing here can run a cluster), and say what a fleet sweep needs.

A manifest is loaded into V1Job / V1DaemonSet and serialised back: the models drop fields they do not know, so a
misspelt or misplaced field makes the round trip differ, and a missing required field raises.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from provided import in_ci

from mldoctor.fleet.command import fleet

INSTALL = "python3 -m pip install 'kubernetes>=29'  (or: pip install -e '.[k8s]')"


@pytest.fixture(scope="module")
def client():
    try:
        import kubernetes.client
        import yaml
    except ImportError:
        if in_ci():
            pytest.fail(f"CI should install the k8s extra: {INSTALL}", pytrace=False)
        pytest.skip(f"the kubernetes client is not installed; provide it: {INSTALL}")
    return kubernetes.client.ApiClient(), yaml


def manifest(*args: str) -> str:
    outcome = CliRunner().invoke(fleet, ["k8s-manifest", *args])
    assert outcome.exit_code == 0, outcome.output
    return outcome.output


def load(client, text: str, kind: str):
    api, yaml = client
    [data] = list(yaml.safe_load_all(text))
    model = api._ApiClient__deserialize(data, kind)  # the client's own loader (what it does with a response)
    assert api.sanitize_for_serialization(model) == data, "a field the model does not know, or in the wrong place"
    return model


def test_the_sweep_job_is_one_pod_per_node(client):
    image = "registry.example.com/tools/mldoctor:0.1.0"
    selector = "nvidia.com/gpu.present=true"
    text = manifest("--job", "--nodes", "16", "--image", image, "--name", "sweep-1", "--runtime-class", "nvidia",
                    "--node-selector", selector)  # fmt: skip
    job = load(client, text, "V1Job")
    assert (job.spec.completion_mode, job.spec.completions, job.spec.parallelism) == ("Indexed", 16, 16)
    pod = job.spec.template.spec
    [term] = pod.affinity.pod_anti_affinity.required_during_scheduling_ignored_during_execution
    assert term.topology_key == "kubernetes.io/hostname"
    assert term.label_selector.match_labels == job.spec.template.metadata.labels
    assert job.spec.template.metadata.labels["mldoctor.io/run"] == "sweep-1"
    [container] = pod.containers
    [env] = container.env
    assert (env.name, env.value_from.field_ref.field_path) == ("NODE_NAME", "spec.nodeName")
    assert container.command + container.args == [
        "python3", "-m", "mldoctor", "fleet", "task", "--", "--skip", "docker", "--no-container",
    ]  # fmt: skip
    assert container.resources.limits == {"nvidia.com/gpu": "8"}
    assert (pod.restart_policy, pod.runtime_class_name) == ("Never", "nvidia")
    assert pod.node_selector == {"nvidia.com/gpu.present": "true"}


def test_the_daemonset_rechecks_every_node(client):
    text = manifest("--daemonset", "--image", "mldoctor:1", "--interval", "600", "--gpus", "0", "--check-args",
                    "--skip docker --no-container --duration 5")  # fmt: skip
    daemonset = load(client, text, "V1DaemonSet")
    assert daemonset.spec.selector.match_labels == daemonset.spec.template.metadata.labels
    [container] = daemonset.spec.template.spec.containers
    assert container.args[:7] == ["fleet", "task", "--every", "600", "--timeout", "600", "--"]
    assert container.args[7:] == ["--skip", "docker", "--no-container", "--duration", "5"]
    assert container.resources is None


def test_odd_strings_stay_strings_in_yaml(client):
    _, yaml = client
    text = manifest("--job", "--image", "x:1", "--check-args", "--port 8080 --only 'nvidia.*' --config 'a: b'")
    [data] = list(yaml.safe_load_all(text))
    args = data["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-6:] == ["--port", "8080", "--only", "nvidia.*", "--config", "a: b"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image", "x"], "say which manifest"),
        (["--job"], "Missing option '--image'"),
        (["--job", "--image", "x", "--name", "Bad_Name"], "lower-case letters"),
        (["--job", "--image", "x", "--node-selector", "novalue"], "give KEY=VALUE"),
        (["--daemonset", "--image", "x", "--interval", "5"], "--interval"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    outcome = CliRunner().invoke(fleet, ["k8s-manifest", *args])
    assert outcome.exit_code == 2
    assert message in outcome.output
