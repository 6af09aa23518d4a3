"""The central scrubbing pass: realistic token shapes go, ordinary facts stay, pseudonyms are consistent."""

from __future__ import annotations

import ast
import json
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from test_bundle import gpu_facts

from mldoctor.bundle import redact
from mldoctor.bundle.redact import Redactor, for_facts, is_secret_name, relevant_environment
from mldoctor.serde import to_data

# Realistic shapes, assembled so that no scanner mistakes this file for a leak.
GITHUB_CLASSIC = "ghp_" + "x7Yq2Lm9Pz4Kb8Vn1Rt6Hc3Jw5Gd0Fs2Ae4U"
GITHUB_FINE = "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV012345"
HF = "hf_" + "QmXwPzLkJhGfDsAqWeRtYuIoPlMnBvCxZa"
AWS = "AKIA" + "Z3Q4RT5YU6IO7PWK"
SLACK = "xoxb-" + "2716348502-5829374619283-aB3dE5fG7hI9jK1lM3nO5pQ7"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    + ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    + ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACDxJ1g0l3Qp4xKp8q1Z2c5x7w9y3r5t6u8i0o2p4a6s8dAAAAJh3Yk9Rd2\n"
    "-----END OPENSSH PRIVATE KEY-----"
)


def scrub(text: str, **options) -> tuple[str, dict[str, int]]:
    redactor = Redactor(**options)
    return redactor.scrub(text), dict(redactor.counts)


@pytest.mark.parametrize(
    ("text", "secret", "kind"),
    [
        (f"export GH={GITHUB_CLASSIC}", GITHUB_CLASSIC, "github-token"),
        (f"token {GITHUB_FINE} used", GITHUB_FINE, "github-token"),
        (f"huggingface-cli login --token {HF}", HF, "huggingface-token"),
        (f"aws_access_key_id {AWS}", AWS, "aws-access-key"),
        (f"slack: {SLACK} posted", SLACK, "slack-token"),
        (f"cookie {JWT};", JWT, "jwt"),
        (f"key file:\n{PRIVATE_KEY}\nrest", "b3BlbnNzaC1rZXkt", "private-key"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7 (truncated log", "MIIEpAIBAAKCAQEA7", "private-key"),
        ("pull https://bob:hunter2-Secret@registry.example.com/v2/", "hunter2-Secret", "url-password"),
        ("curl -H 'Authorization: Bearer abcdefghijklmnop0123456789'", "abcdefghijklmnop0123456789", "bearer-token"),
        ("sk-proj-" + "Ab3dEf6hIj9lMn2pQr5tUv8x", "Ab3dEf6hIj9lMn2pQr5tUv8x", "openai-key"),
    ],
)
def test_known_token_shapes_are_replaced_by_their_class(text, secret, kind):
    scrubbed, counts = scrub(text)
    assert secret not in scrubbed and f"[REDACTED:{kind}]" in scrubbed
    assert counts == {kind: 1}


def test_the_user_of_a_url_stays_its_password_goes():
    scrubbed, _ = scrub("DOCKER_HOST=ssh://deploy:pw-12345@build.example.com")
    assert scrubbed == "DOCKER_HOST=ssh://deploy:[REDACTED:url-password]@build.example.com"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("HF_TOKEN=abc123def456", "HF_TOKEN=[REDACTED:secret-value]"),
        (
            "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "AWS_SECRET_ACCESS_KEY=[REDACTED:secret-value]",
        ),
        ("PGPASSWORD='pa ss' psql", "PGPASSWORD=[REDACTED:secret-value] psql"),
        ("password: hunter2\nuser: bob", "password: [REDACTED:secret-value]\nuser: bob"),
        ("GET /x?api_key=s3cr3t&page=2", "GET /x?api_key=[REDACTED:secret-value]&page=2"),
        ('{"auth": "dXNlcjpwYXNz", "email": "a@b.c"}', '{"auth": "[REDACTED:secret-value]", "email": "a@b.c"}'),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic [REDACTED:secret-value]"),
    ],
)
def test_values_of_secret_looking_names_are_replaced(text, expected):
    assert scrub(text)[0] == expected


@pytest.mark.parametrize(
    "text",
    [
        "tokenizers==0.19.1\ngoogle-auth==2.29.0\nkeyring==24.3.0\nsecretstorage==3.3.3\nnvidia-cudnn-cu12==8.9.2.26",
        "NVIDIA_DRIVER_CAPABILITIES=compute,utility\nNVIDIA_REQUIRE_CUDA=cuda>=12.4 brand=tesla,driver>=470",
        "driver 550.90.07, CUDA 12.4, NVML 12.550.90.07, kernel 6.1.0-18-amd64, torch 2.4.1+cu124",
        "GPU 00000000:17:00.0 NVRM: Xid (PCI:0000:17:00): 79, pid=1234, GPU has fallen off the bus.",
        "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.550.90.07 /var/lib/docker unix:///var/run/docker.sock",
        "2026-11-27T17:10:48Z probe.cuda bench.matmul.bf16 docker.daemon sm_90 std::vector<int>",
        "    Serial Number : 1650123456789\n    GPU UUID : GPU-5a7c1f3e-9b2d-4e61-8c0a-000000000000",
        '{"log-opts": {"max-size": "100m"}, "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}',
        "mldoctor-probe:0.1.0 exit code 0; 3 warnings, 10 passed",
    ],
)
def test_ordinary_facts_are_left_alone(text):
    assert scrub(text) == (text, {})


def test_the_facts_of_a_whole_gpu_host_pass_unchanged_without_host_redaction():
    data = to_data(gpu_facts())
    data["probe"]["run"]["stderr_tail"] = ""  # the planted secrets of test_bundle
    redactor = Redactor()
    assert redactor.scrub_data(data) == data and not redactor.counts


def test_scrubbing_twice_changes_and_counts_nothing_more():
    text = f"HF_TOKEN={HF} https://u:p4ss@h.example.com 10.1.2.3 gpu-07 {GITHUB_CLASSIC} password=x1"
    redactor = Redactor(hosts=True, hostnames=["gpu-07"])
    once = redactor.scrub(text)
    counts = dict(redactor.counts)
    assert redactor.scrub(once) == once and dict(redactor.counts) == counts
    assert redactor.pseudonyms.counts() == {"host": 1, "ipv4": 1}


def test_json_stays_valid_json():
    text = json.dumps({"stderr": 'PASSWORD="x y" and\n' + PRIVATE_KEY, "n": 1, "password": "p"})
    scrubbed = json.loads(Redactor().scrub_file("raw/x.json", text))
    assert scrubbed == {
        "stderr": "PASSWORD=[REDACTED:secret-value] and\n[REDACTED:private-key]",
        "n": 1,
        "password": "[REDACTED:secret-value]",
    }


def test_literal_secrets_of_the_environment_go_wherever_they_appear():
    redactor = for_facts(gpu_facts(), {"WANDB_API_KEY": "0123456789abcdef0123", "SHORT_TOKEN": "abc", "PATH": "/bin"})
    assert (
        redactor.scrub("wandb: key 0123456789abcdef0123 ok; abc") == "wandb: key [REDACTED:environment-secret] ok; abc"
    )


class TestPseudonyms:
    def redactor(self, **changes) -> Redactor:
        options = {"hosts": True, "hostnames": ["gpu-07.corp.example.com", "ubuntu"], "users": ["alice", "1000"]}
        return Redactor(**(options | changes))

    def test_the_same_value_is_the_same_pseudonym_everywhere(self):
        redactor = self.redactor()
        first = redactor.scrub(
            "alice@gpu-07.corp.example.com from 10.0.0.5 (fe80::1c2:3ff:fe4d:5e6f, 52:54:00:12:34:56)"
        )
        second = redactor.scrub("GPU-07 /home/alice/x 10.0.0.5 10.0.0.6 52-54-00-12-34-56 52:54:00:ab:cd:ef")
        assert first == "user1@host1 from 192.0.2.1 (2001:db8::1, 02:00:00:00:00:01)"
        assert second == "host1 /home/user1/x 192.0.2.1 192.0.2.2 02:00:00:00:00:01 02:00:00:00:00:02"

    def test_whole_words_only_and_default_names_stay(self):
        scrubbed = self.redactor().scrub("malice alice_x ID=ubuntu uid 1000 gpu-07x")
        assert scrubbed == "malice alice_x ID=ubuntu uid 1000 gpu-07x"

    def test_loopback_unspecified_and_broadcast_addresses_stay(self):
        text = "127.0.0.1 0.0.0.0 ::1 ff:ff:ff:ff:ff:ff 00:00:00:00:00:00"
        assert self.redactor().scrub(text) == text

    def test_bus_ids_versions_and_times_survive_host_redaction(self):
        text = "00000000:17:00.0 550.90.07 12.550.90.07 17:10:48 sm_90 probe.cuda cudnn==8.9.2.26"
        assert self.redactor().scrub(text) == text

    def test_gpu_uuids_and_serials_only_when_asked(self):
        text = "GPU-5a7c1f3e-9b2d-4e61-8c0a-000000000003\n    Serial Number : 1650123456789\n"
        assert self.redactor().scrub(text) == text
        scrubbed = self.redactor(gpu_ids=True).scrub(text)
        assert scrubbed == "GPU-00000000-0000-0000-0000-000000000001\n    Serial Number : SERIAL1\n"

    def test_a_user_named_like_a_check_word_is_left_alone(self):
        """Replacing `probe` would turn probe.cuda into user1.cuda, in the page and in the re-diagnosed facts."""
        assert Redactor(hosts=True, users=["probe"]).scrub("probe.cuda as probe") == "probe.cuda as probe"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("HF_TOKEN", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("PGPASSWORD", True),
        ("apiKey", True),
        ("DOCKER_AUTH_CONFIG", True),
        ("registry-password", True),
        ("tokenizers", False),
        ("keyring", False),
        ("NVIDIA_DRIVER_CAPABILITIES", False),
        ("DOCKER_CERT_PATH", False),
        ("PWD", False),
        ("author", False),
    ],
)
def test_secret_names(name, secret):
    assert is_secret_name(name) is secret


def test_the_environment_is_an_allowlist():
    kept, left_out = relevant_environment(
        {
            "NVIDIA_VISIBLE_DEVICES": "0",
            "CUDA_HOME": "/usr/local/cuda",
            "PATH": "/bin",
            "DOCKER_HOST": "unix:///x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "MY_DB_URL": "postgres://u:p@h/db",
            "HOME": "/home/alice",
        }
    )
    assert kept == {
        "CUDA_HOME": "/usr/local/cuda",
        "DOCKER_HOST": "unix:///x",
        "NVIDIA_VISIBLE_DEVICES": "0",
        "PATH": "/bin",
    }
    assert left_out == 3


@pytest.mark.parametrize(
    ("text", "secret", "kind"),
    [
        # pip freeze / daemon.json registry mirrors: a token as the whole user part of an http(s) URL
        ("mypkg @ git+https://" + "0123456789abcdef" * 2 + "@github.com/acme/x.git", "0123456789abcdef", "url-token"),
        ('{"registry-mirrors": ["https://m1rr0rt0k3n@mirror.example.com"]}', "m1rr0rt0k3n", "url-token"),
        ("https://abc123dsnkey@o123.ingest.sentry.io/456", "abc123dsnkey", "url-token"),
        # an unencoded `@` in the password: URL parsers split at the last `@`, and so does the redaction
        ("HTTP_PROXY=http://proxyuser:p@ss-w0rd@proxy.example.com:3128", "ss-w0rd", "url-password"),
        ('"hosts": ["tcp://admin:tcp-s3cret@0.0.0.0:2376"]', "tcp-s3cret", "url-password"),
        # command lines in logs, journals, probe stderr
        ("docker login -u bob --password hunter2secret reg.io", "hunter2secret", "secret-value"),
        ("docker login --password=hunter2secret", "hunter2secret", "secret-value"),
        ("docker login -u bob -p hunter2x reg.io", "hunter2x", "secret-value"),
        ("huggingface-cli login --token abcdef123456", "abcdef123456", "secret-value"),
        # a Python dict in a traceback, a YAML value with spaces, a comma in a value
        ("{'password': 'hunter2py', 'user': 'x'}", "hunter2py", "secret-value"),
        ("password: correct horse battery staple\n", "horse battery", "secret-value"),
        ("PASSWORD=ab,cd", "cd", "secret-value"),
        # names that are secret though short or plural; Azure SAS and S3 presigned signatures
        ("DOCKER_PASS=plainpass1", "plainpass1", "secret-value"),
        ("GITHUB_PAT=patvalue1", "patvalue1", "secret-value"),
        ("DB_CREDS=credsval", "credsval", "secret-value"),
        ("https://a.blob.core.windows.net/c/f?sv=2020-08-04&sig=AbCdSiGvalue%3D", "AbCdSiGvalue", "secret-value"),
        ("https://b.s3.amazonaws.com/k?X-Amz-Signature=0a1b2c3d4e5f", "0a1b2c3d4e5f", "secret-value"),
        ("GET https://hub.example.com/v1/x?api_key=s3cr3tk3y&page=2", "s3cr3tk3y", "secret-value"),
    ],
)
def test_secrets_in_the_shapes_careless_users_leave_them(text, secret, kind):
    redactor = Redactor()
    scrubbed = redactor.scrub(text)
    assert secret not in scrubbed and f"[REDACTED:{kind}]" in scrubbed, scrubbed
    counts = dict(redactor.counts)
    assert redactor.scrub(scrubbed) == scrubbed and dict(redactor.counts) == counts  # idempotent


@pytest.mark.parametrize(
    "text",
    [
        "ssh://git@github.com/acme/x.git git+ssh://git@github.com/acme/y.git",
        "docker login --password-stdin registry.example.com",
        "docker run --rm --gpus all --shm-size=1g --ipc=host -e NVIDIA_DRIVER_CAPABILITIES=compute,utility img",
        "nvidia-smi --query-gpu=name,uuid --format=csv,noheader",
        '{"summary": {"PASS": 38, "FAIL": 1}, "bypass": "x", "compat": "cuda-compat-12-4"}',
        "ubuntu@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "NO_PROXY=localhost,127.0.0.1,.corp.example.com",
    ],
)
def test_ordinary_text_that_looks_close_to_a_secret_is_left_alone(text):
    assert scrub(text) == (text, {})


def test_a_number_under_a_secret_name_goes_in_collected_json_only():
    redactor = Redactor()
    raw = json.loads(redactor.scrub_file("raw/x.json", '{"password": 12345678, "pin": 3, "port": 5}'))
    assert raw == {"password": "[REDACTED:secret-value]", "pin": 3, "port": 5}
    manifest = {"replaced": {"secret-value": 2, "aws-access-key": 1}}  # counts keyed by class names stay counts
    assert json.loads(redactor.scrub_file("manifest.json", json.dumps(manifest))) == manifest


def test_a_gpu_has_one_pseudonym_with_or_without_its_prefix_and_other_uuids_stay():
    gpu = "5a7c1f3e-9b2d-4e61-8c0a-000000000003"
    daemon_id = "a1b2c3d4-9b2d-4e61-8c0a-000000000009"
    redactor = Redactor(gpu_ids=True, gpu_uuids=[f"GPU-{gpu}"])
    scrubbed = redactor.scrub(f"nvml GPU-{gpu.upper()} torch {gpu} docker {daemon_id}")
    assert scrubbed == (
        "nvml GPU-00000000-0000-0000-0000-000000000001 torch 00000000-0000-0000-0000-000000000001 docker " + daemon_id
    )
    assert redactor.scrub(scrubbed) == scrubbed


def test_ipv6_addresses_are_one_pseudonym_however_written():
    redactor = Redactor(hosts=True)
    assert redactor.scrub("fe80::1 FE80:0:0:0:0:0:0:1") == "2001:db8::1 2001:db8::1"


def test_a_host_or_user_named_like_a_fact_does_not_rewrite_the_facts():
    """A host called `arch` must not turn os-release's ID=arch into ID=host1, nor a user called `kernel` rename
    the `kernel` key: re-diagnosis reads both."""
    data = to_data(gpu_facts())
    data["probe"]["run"]["stderr_tail"] = ""
    data["docker"]["daemon"]["warnings"] = []  # its IP address is rightly replaced
    data["host"]["os"]["id"] = "arch"
    redactor = Redactor(hosts=True, hostnames=["arch", "snap"], users=["kernel", "rootless"])
    assert redactor.scrub_data(data) == data


def test_html_markup_survives_the_text_pass():
    """The page is scrubbed between its tags: a value running to the end of a word or line keeps `</td>`."""
    page = (
        "<!DOCTYPE html><style>td > b { x: 1 }</style><table><tr><td>HF_TOKEN=[REDACTED:secret-value]</td>"
        "<td>--token abcdefghijk</td><td>&quot;password&quot;: &quot;hunter2&quot;</td></tr></table>"
    )
    scrubbed = Redactor().scrub_file("report.html", page)
    assert scrubbed.count("</td>") == 3 and "td > b" in scrubbed
    assert "abcdefghijk" not in scrubbed and "hunter2" not in scrubbed


# One realistic sample per family that gitleaks and detect-secrets know, assembled so that no scanner mistakes this
# file for a leak. Each names the secret part that must go and the class it is counted under.
HEX40 = "9f8e7d6c5b4a" + "39281706f5e4d3c2b1a0" + "1a2b3c4d"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG" + "/bPxRfiCYEXAMPLEKEY"
GCP_KEY_ID = "1b2c3d4e5f60718293a4" + "b5c6d7e8f90a1b2c3d4e"
PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"
GCP_SERVICE_ACCOUNT = json.dumps(
    {
        "type": "service_account",
        "project_id": "acme-train",
        "private_key_id": GCP_KEY_ID,
        "private_key": f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY-----\n",
        "client_email": "trainer@acme-train.iam.gserviceaccount.com",
    }
)
AZURE_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsu" + "Fq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
FAMILIES = [
    ("aws ASIA" + "Z3Q4RT5YU6IO7PWK" + " expires", "Z3Q4RT5YU6IO7PWK", "aws-access-key"),
    ("A3TX" + "Z3Q4RT5YU6IO7PWK", "Z3Q4RT5YU6IO7PWK", "aws-access-key"),
    (f"$ aws configure set aws_secret_access_key {AWS_SECRET}", AWS_SECRET, "aws-secret-key"),
    (f"[default]\naws_secret_access_key = {AWS_SECRET}\n", AWS_SECRET, "secret-value"),
    (f"creds: {GCP_SERVICE_ACCOUNT}", PEM_BODY, "private-key"),
    (f"creds: {GCP_SERVICE_ACCOUNT}", GCP_KEY_ID, "gcp-service-account"),
    (f"GOOGLE_CREDENTIALS={json.dumps(GCP_SERVICE_ACCOUNT)} next", GCP_KEY_ID, "secret-value"),
    (f"payload={json.dumps(GCP_SERVICE_ACCOUNT)}", GCP_KEY_ID, "gcp-service-account"),
    (f"payload={json.dumps(GCP_SERVICE_ACCOUNT)}", PEM_BODY, "private-key"),
    ("maps key=AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", "SyD-9tSrke72PouQMnMX", "google-api-key"),
    ("oauth ya29." + "a0AfH6SMBx3Lk9Qz2Wv8Yt5Rn1Pm4Jh7Gf", "a0AfH6SMBx3Lk9Qz2Wv8Yt5", "google-oauth-token"),
    (
        "DefaultEndpointsProtocol=https;AccountName=acmetrain;AccountKey="
        + AZURE_ACCOUNT_KEY
        + ";EndpointSuffix=core.windows.net",
        AZURE_ACCOUNT_KEY[:40],
        "secret-value",
    ),
    ("client secret abc8Q~" + "Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0fE9dC", "Zx9yW8vU7tS6rQ5pO4nM3lK2", "azure-client-secret"),
    ("app token xapp-1-" + "A0123BCDE45-6789012345678-abcdef0123456789", "A0123BCDE45-6789012345", "slack-token"),
    ("POST https://hooks.slack.com/workflows/" + "T01ABCD2EFG/A0123/456/Xyz789", "T01ABCD2EFG/A0123", "slack-webhook"),
    ("stripe sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc", "stripe-key"),
    ("restricted rk_live_" + "51H8xYzAbCdEfGhIjKlMnOp", "51H8xYzAbCdEfGhIjKlMnOp", "stripe-key"),
    ("//registry.npmjs.org/:_authToken=npm_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8", "a1B2c3D4e5F6g7H8", "npm-token"),
    ("//registry.npmjs.org/:_authToken=0f1e2d3c-" + "4b5a-6978-8796-a5b4c3d2e1f0", "4b5a-6978-8796", "secret-value"),
    ("twine -p pypi-AgEIcHlwaS5vcmc" + "CJDk2YjNjMjYtZjI3Ny00ZTRkLWE2NDQtMzg3", "CJDk2YjNjMjYtZjI3", "pypi-token"),
    ("org token api_org_" + "QmXwPzLkJhGfDsAqWeRtYuIoPlMnBvCxZa", "QmXwPzLkJhGfDsAqWeRt", "huggingface-token"),
    (f"wandb login {HEX40}", HEX40, "wandb-api-key"),
    (f"wandb login --relogin {HEX40}", HEX40, "wandb-api-key"),
    (f"WANDB_API_KEY {HEX40}", HEX40, "wandb-api-key"),
    (f"machine api.wandb.ai\n  login user\n  password {HEX40}\n", HEX40, "netrc-password"),
    ("machine huggingface.co login alice password hfN3trcS3cret", "hfN3trcS3cret", "netrc-password"),
    ("OPENAI sk-" + "T3BlbkFJa1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8", "T3BlbkFJa1b2c3d4e5f6g", "openai-key"),
    ("sk-svcacct-" + "Ab3dEf6hIj9lMn2pQr5tUv8xYz", "Ab3dEf6hIj9lMn2pQr5tUv8x", "openai-key"),
    ("x sk-ant-api03-" + "Ab3dEf6hIj9lMn2pQr5tUv8xYz0-_Ab3dEf6hIj9lMn2pQr5t", "Ab3dEf6hIj9lMn2pQr5t", "anthropic-key"),
    ("NGC said nvapi-" + "Ab3dEf6hIj9lMn2pQr5tUv8xYz0_Ab3dEf6hIj9lMn2pQr5tUv8xYz0Ab3d", "Ab3dEf6hIj9l", "ngc-api-key"),
    ("gho_" + "x7Yq2Lm9Pz4Kb8Vn1Rt6Hc3Jw5Gd0Fs2Ae4U", "x7Yq2Lm9Pz4Kb8Vn1Rt6", "github-token"),
    ("ghs_" + "x7Yq2Lm9Pz4Kb8Vn1Rt6Hc3Jw5Gd0Fs2Ae4U", "x7Yq2Lm9Pz4Kb8Vn1Rt6", "github-token"),
    ("runner glrt-" + "Ab3dEf6hIj9lMn2pQr5tUv8x", "Ab3dEf6hIj9lMn2pQr5t", "gitlab-token"),
    ("glpat-" + "Ab3dEf6hIj9lMn2pQr5tUv8x", "Ab3dEf6hIj9lMn2pQr5t", "gitlab-token"),
    ("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB7s\n-----END EC PRIVATE KEY-----", "MHcCAQEEIB7s", "private-key"),
    ("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----", "lQOYBF", "private-key"),
    (f"Authorization: {JWT}", JWT, "jwt"),
]


@pytest.mark.parametrize(("text", "secret", "kind"), FAMILIES)
def test_the_secret_families_of_the_maintained_scanners_are_replaced(text, secret, kind):
    redactor = Redactor()
    scrubbed = redactor.scrub(text)
    assert secret not in scrubbed and f"[REDACTED:{kind}]" in scrubbed, scrubbed
    counts = dict(redactor.counts)
    assert redactor.scrub(scrubbed) == scrubbed and dict(redactor.counts) == counts  # idempotent


def test_a_service_account_file_loses_its_key_and_key_id_as_data_too():
    scrubbed = json.loads(Redactor().scrub_file("raw/sa.json", GCP_SERVICE_ACCOUNT))
    assert scrubbed["private_key_id"].startswith("[REDACTED:") and scrubbed["private_key"].startswith("[REDACTED:")
    assert scrubbed["client_email"] == "trainer@acme-train.iam.gserviceaccount.com"


@pytest.mark.parametrize(
    "text",
    [
        # git SHAs (40 hex, the shape of a W&B key), image digests, container ids: not next to a key's name
        f"commit {HEX40}\nMerge: 1a2b3c4 5d6e7f8",
        f"mypkg @ git+https://github.com/acme/mypkg.git@{HEX40}",
        "nvcr.io/nvidia/pytorch@sha256:" + "0123456789abcdef" * 4,
        "wandb==0.17.5 run 3kq9z2x1 synced; wandb: Run data is saved locally",
        # versions, UUIDs of GPUs (without --redact-gpu-ids) and words that start like a prefix
        "torch==2.4.1+cu124 nvidia-cublas-cu12==12.4.5.8 CUDA 12.4.1 driver 550.90.07",
        "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5a7c1f3e-9b2d-4e61-8c0a-0123456789ab)",
        "task-" + "a" * 30 + " desk-" + "b" * 30 + " risk_live_" + "c" * 20,
        "login: alice\npassword:\n",
        "Enter the password for alice, then login again",
    ],
)
def test_lookalikes_of_the_new_families_are_left_alone(text):
    assert scrub(text) == (text, {})


MIB = 1 << 20
RUN = 20_000
"""Long enough that one quadratic rule costs a second per shape (`key: v` and 20,000 spaces took 1.6 s)."""
LONG = 100_000
"""The shapes that were quadratic: long enough that they alone exceed the bound before the fix."""
HOSTILE_SHAPES = (
    "key: v" + " " * LONG + "x\n",  # a lazy value before `[ \t]*$`: every space retried the rest of the run
    "password: v" + " \t" * (LONG // 2) + "\r\n",
    "login " * (LONG // 6) + "\n",  # every `login` read the rest of the line again
    "docker login" + " -u" * (RUN // 3) + "\n",
    "a=" * (RUN // 2) + "\n",
    "a:" * (RUN // 2) + "\n",
    "x" + " =" * (RUN // 2) + "\n",
    "A" * RUN + "\n",
    "eyJ" + "A" * RUN + "." + "\n",
    ".eyJAAAAAAAAA" * (RUN // 13) + "\n",
    '"' + "a" * RUN + "\n",
    "'" + "a" * RUN + "\n",
    'GOOGLE_CREDENTIALS="' + "\\x" * (RUN // 2) + "\n",
    '"password"' + " " * RUN + "\n",
    '"a": ' * (RUN // 5) + "\n",
    "-----BEGIN " + "A " * (RUN // 2) + "\n",
    "-----END PRIVATE KEY-----" * (RUN // 25) + "\n",
    "https://" + "a" * RUN + "\n",
    "a://" * (RUN // 4) + "\n",
    "http://u:" + "p" * RUN + "\n",
    "--password" + " " * RUN + "\n",
    "-" + "-a" * (RUN // 2) + "\n",
    "Bearer" + " " * RUN + "\n",
    "wandb login" + " -x" * (RUN // 3) + "\n",
    "WANDB_API_KEY" + " " * RUN + "\n",
    "aws_secret_access_key" + " " * RUN + "\n",
    'private_key_id\\"' + " " * RUN + "\n",
    "login x" + " " * RUN + "\n",
    "login " + "x" * RUN + "\n",
    "sk-" * (RUN // 3) + "\n",
    "nvapi-" + "_" * RUN + "\n",
    "abc8Q~" * (RUN // 6) + "\n",
    "    Serial Number" + " " * RUN + "\n",
    ":" * RUN + "\n",
    "a:" * 7 + "1:" * (RUN // 2) + "\n",
    "aa:" * (RUN // 3) + "\n",
    "1." * (RUN // 2) + "\n",
    "GPU-" + "0" * RUN + "\n",
    "<" * RUN + "\n",
    "[REDACTED:x]" * (RUN // 12) + "\n",
)


def hostile_text(size: int = 2 * MIB) -> str:
    """`size` characters of the shapes above, each repeated in turn, and a PEM block that never ends at the end."""
    shapes, total, i = [], 0, 0
    while total < size:
        shape = HOSTILE_SHAPES[i % len(HOSTILE_SHAPES)]
        shapes.append(shape)
        total += len(shape)
        i += 1
    return ("".join(shapes) + "-----BEGIN RSA PRIVATE KEY-----\n" + "A" * 64)[-size:]


def plain_text(size: int = 2 * MIB) -> str:
    """`size` characters of an ordinary log: the baseline every rule reads once."""
    line = "2026-11-30T10:00:00Z nvidia driver 550.90.07 loaded, CUDA 12.4, docker 24.0.7 ok: training step done\n"
    return (line * (size // len(line) + 1))[:size]


def timed_scrub(text: str) -> float:
    """Seconds to scrub `text` as a raw text file and as the HTML page, with every optional rule on."""
    redactor = Redactor(
        hosts=True, gpu_ids=True, hostnames=["gpu-07.corp.example.com"], users=["alice"], secrets=["s3cr3t-value"]
    )
    started = time.perf_counter()
    redactor.scrub_file("raw/kernel-nvidia.txt", text)
    redactor.scrub_file("report.html", text)
    return time.perf_counter() - started


def test_redaction_stays_linear_on_a_hostile_file():
    """2 MiB of shapes that made a backtracking rule quadratic take no more than 50 times 2 MiB of plain log."""
    hostile, plain = hostile_text(), plain_text()
    assert len(hostile) == len(plain) == 2 * MIB
    baseline = min(timed_scrub(plain) for _ in range(2))
    elapsed = timed_scrub(hostile)
    assert elapsed <= 50 * baseline, f"hostile {elapsed:.2f} s, plain {baseline:.2f} s"


def test_json_nested_too_deep_to_parse_is_scrubbed_as_text():
    text = "[" * 100_000 + '"HF_TOKEN=' + "abcdefgh12345678" + '"'
    scrubbed = Redactor().scrub_file("raw/daemon.json", text)
    assert "abcdefgh12345678" not in scrubbed and scrubbed.startswith("[" * 100_000)


PACKAGE = Path(__file__).resolve().parents[2] / "mldoctor"
ONE_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]{1,31}")
COLLECTIONS = ("frozenset", "set", "tuple")


def _strings(node: ast.AST) -> Iterator[str]:
    """The string constants of a literal: a string, a tuple/list/set of them, a dict's keys, frozenset([...])."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.Tuple | ast.List | ast.Set):
        for element in node.elts:
            yield from _strings(element)
    elif isinstance(node, ast.Dict):
        for key in node.keys:
            if key is not None:
                yield from _strings(key)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in COLLECTIONS:
        for argument in node.args:
            yield from _strings(argument)


def compared_words() -> set[str]:
    """Every one-word string that mldoctor.rules, facts, fixes and engine compare a fact with: operands of `==`/`in`
    (a named constant collection resolved, from any of these modules), `startswith`/`get` arguments, subscripts
    and `case` values. Read from the source, here in the test only: the redactor declares its vocabulary."""
    paths = [
        path for package in ("rules", "facts", "fixes", "engine") for path in sorted((PACKAGE / package).rglob("*.py"))
    ]
    trees = [ast.parse(path.read_text(encoding="utf-8")) for path in paths]
    named: dict[str, list[str]] = {}
    for tree in trees:
        for node in tree.body:
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    if isinstance(target, ast.Name):
                        named.setdefault(target.id, []).extend(_strings(node.value))

    def operand(node: ast.AST) -> Iterator[str]:
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
        yield from named.get(name, []) if name else _strings(node)

    words = set()
    for tree in trees:
        for node in ast.walk(tree):
            found: Iterable[str] = ()
            if isinstance(node, ast.Compare):
                found = (word for side in (node.left, *node.comparators) for word in operand(side))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
                if node.func.attr in ("startswith", "endswith", "get", "removeprefix", "removesuffix", "pop"):
                    found = operand(node.args[0])
            elif isinstance(node, ast.Subscript):
                found = _strings(node.slice)
            elif isinstance(node, ast.MatchValue):
                found = _strings(node.value)
            words |= {word.lower() for word in found if ONE_WORD.fullmatch(word)}
    return words


def test_the_scan_finds_the_words_the_rules_compare_with():
    """The cross-check below is only as good as this scan: it must see comparisons in each form the rules use."""
    assert {"rootless", "snap", "desktop", "nouveau", "systemd"} <= compared_words()


def test_no_word_the_rules_compare_with_is_ever_pseudonymised():
    """A host or user named like a value a rule compares (`snap`, `rootless`, `nouveau`, `warn`) would rewrite
    that fact in the bundle, and `check --facts` would judge a different machine. VOCABULARY must hold them all."""
    words = sorted(compared_words())
    replaced = [word for word in words if Redactor(hosts=True, hostnames=[word], users=[word]).scrub(word) != word]
    assert replaced == [], "add these to mldoctor/bundle/vocabulary.py"


def test_the_reserved_words_are_declared_not_read_from_source(monkeypatch):
    """The redactor must not parse mldoctor's own files at run time (a zipapp or a stripped install has none)."""
    read: list[str] = []
    parse, read_text = ast.parse, Path.read_text
    monkeypatch.setattr(ast, "parse", lambda *args, **kwargs: read.append("ast.parse") or parse(*args, **kwargs))
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: read.append(str(self)) or read_text(self, *a, **k))
    redact._reserved.cache_clear()
    try:
        scrubbed = Redactor(hosts=True, users=["probe", "rootless"]).scrub("probe.cuda rootless")
    finally:
        redact._reserved.cache_clear()
    assert scrubbed == "probe.cuda rootless" and read == []
