"""The central scrubbing pass of a support bundle: every byte written into the archive goes through one Redactor.

Like sos's cleaner, redaction happens once, in one place, after collection and before anything is written, so
a collector added later cannot forget it. Two layers:

- **Secrets** (always, unless `--no-redact`): known token shapes, the families gitleaks and detect-secrets know
  (AWS, GCP, Azure, GitHub, GitLab, Hugging Face, Slack, Stripe, OpenAI, Anthropic, NGC, W&B, PyPI, npm, Docker
  Hub, JWTs, bearer tokens, private key blocks, netrc passwords), the password in
  `scheme://user:password@host`, the value of anything whose *name* looks secret (`HF_TOKEN=...`,
  `"password": "..."`, `api_key: ...`), and the literal values of secret-named variables of mldoctor's own
  environment wherever they appear. Each is replaced by `[REDACTED:<class>]`.
- **Pseudonyms** (`--redact-hosts`, optionally `gpu_ids`): host names, users, IPv4/IPv6 and MAC addresses (and
  GPU UUIDs and serial numbers) become stable placeholders from documentation ranges (`host1`, `user1`,
  `192.0.2.1`, `2001:db8::1`, `02:00:00:00:00:01`); one map per bundle, so the same host is the same pseudonym in
  every file.

Every rule reads the text in linear time (tests/unit/test_redact.py scrubs 2 MiB of hostile shapes against a
baseline): no lazy quantifier before an anchor, no quantifier next to another that matches the same characters.

Every rule is idempotent (a marker or a pseudonym is never replaced again), so scrubbing structured data first
(for correct escaping in JSON, Markdown and HTML) and the rendered files again costs nothing and counts nothing
twice. Counts per class end up in the manifest.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import ipaddress
import json
import re
import typing
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from mldoctor.bundle.vocabulary import VOCABULARY
from mldoctor.facts import Facts
from mldoctor.model import CheckResult, Report
from mldoctor.serde import from_data, to_data, type_hints

MARKER = re.compile(r"\[REDACTED:[a-z0-9-]+\]")
HTML_TAG = re.compile(r"(<[^<>]*>)")
"""A tag holds no `<` (escaped in attributes): a run of `<` without `>` is read once, not once per `<`."""

SECRET_WORDS = (
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "credential",
    "credentials",
    "auth",
    "authorization",
    "apikey",
    "key",
    "cookie",
    "tokens",
    "secrets",
    "passwords",
    "signature",
)
"""A name is secret when one of its words (split at `_`, `-`, `.`) ends with one of these: HF_TOKEN, PGPASSWORD,
apiKey, AWS_SECRET_ACCESS_KEY; not tokenizers, keyring or NVIDIA_DRIVER_CAPABILITIES."""
SECRET_EXACT_WORDS = frozenset(["pw", "pat", "cred", "creds", "sig", "dsn"])
"""Short words that are secret only as whole words (GITHUB_PAT, DB_CREDS, Azure's `?sig=`, SENTRY_DSN): as
suffixes they would catch `compat`."""

TOKENS = (
    ("github-token", r"gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}"),
    ("gitlab-token", r"gl(?:pat|ptt|dt|rt|cbt|soat|ffct|oas|imt|agent)-[A-Za-z0-9_-]{20,}|GR1348941[A-Za-z0-9_-]{20,}"),
    ("huggingface-token", r"(?:hf_|api_org_)[A-Za-z0-9]{30,}"),
    ("slack-token", r"xox[abposre]-[A-Za-z0-9-]{10,}|xoxe\.xox[bp]-[A-Za-z0-9-]{10,}|xapp-[0-9]-[A-Za-z0-9-]{10,}"),
    ("anthropic-key", r"sk-ant-[A-Za-z0-9_-]{20,}"),
    ("openai-key", r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"),
    ("stripe-key", r"(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{10,99}|whsec_[A-Za-z0-9]{24,}"),
    ("ngc-api-key", r"nvapi-[A-Za-z0-9_-]{20,}"),
    ("google-api-key", r"AIza[0-9A-Za-z_-]{35}"),
    ("google-oauth-token", r"ya29\.[0-9A-Za-z_-]{20,}|GOCSPX-[A-Za-z0-9_-]{20,}"),
    ("pypi-token", r"pypi-[A-Za-z0-9_-]{50,}"),
    ("npm-token", r"npm_[A-Za-z0-9]{36}"),
    ("docker-hub-token", r"dckr_(?:pat|oat)_[A-Za-z0-9_-]{20,}"),
    ("azure-client-secret", r"[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34}"),
    ("jwt", r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
)
"""Tokens recognisable by their prefix (as issued today, after gitleaks' and detect-secrets' rules); each must start
a word. One alternation, so the text is read once for all of them; at one position the first listed wins
(`sk-ant-` is Anthropic's before it is an OpenAI-style `sk-`)."""
PREFIXED = re.compile(
    r"(?<![\w-])(?:" + "|".join(f"(?P<{name.replace('-', '_')}>{body})" for name, body in TOKENS) + ")"
)

TOKEN_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "private-key",
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|.*)",
            re.DOTALL,  # a block cut off by a log's tail is removed to the end
        ),
    ),
    (
        "aws-access-key",
        re.compile(
            r"(?<![A-Z0-9])(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AIDA|AROA|ANPA|AGPA|AIPA|ANVA|APKA|ASCA)[A-Z0-9]{16}"
            r"(?![A-Z0-9])"
        ),
    ),
    ("slack-webhook", re.compile(r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_+-]+")),
)
"""Shapes that need more than a prefix: a PEM block (to its END line), AWS key ids (upper case, 20 characters),
Slack's webhook URLs."""

CONTEXT_SECRETS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # `aws configure set aws_secret_access_key X`: with `=` or `:` the name rules below take it
    ("aws-secret-key", re.compile(r"(?i:(?<![\w-])aws_secret_access_key)[ \t]+([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])")),
    # a service-account JSON's key id, also inside an escaped JSON string (`\"private_key_id\": \"...\"`)
    ("gcp-service-account", re.compile(r'private_key_id\\?"[ \t]*:[ \t]*\\?"([0-9a-f]{40})(?![0-9a-f])')),
    # W&B keys are 40 hex digits, like a git SHA: only next to what names them
    (
        "wandb-api-key",
        re.compile(
            r"(?i:(?<![\w-])(?:wandb_api_key|wandb[ \t]+login(?:[ \t]+-[\w-]*)*))[ \t\"':=]+([0-9a-f]{40})(?![\w])"
        ),
    ),
    # ~/.netrc (W&B, Hugging Face and pip write one): `machine h login u password p`, on one line or several
    ("netrc-password", re.compile(r"(?<![\w-])login[ \t]+\S+\s+password[ \t]+(\S+)")),
)
"""Secrets without a prefix of their own, recognised by the word before them; only the captured value goes."""

BEARER = re.compile(r"(?i)\bbearer\s+([A-Za-z0-9._~+/-]{16,}=*)")
URL_USERINFO = re.compile(r"(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]*)://([^\s/?#\"'<>\\]*)@")
"""`scheme://userinfo@host`; the authority ends at the first `/`, `?` or `#`, and the userinfo at its *last* `@`
(as URL parsers read it), so `http://u:p@ss@proxy` loses all of `p@ss`."""
TOKEN_IN_USER_SCHEMES = frozenset(["http", "https", "ftp", "ftps", "ws", "wss"])
"""Schemes whose user part alone is a credential (`git+https://<token>@github.com/...`, a Sentry DSN's key);
`ssh://git@github.com` names an account, which stays."""
QUOTED_SECRET = re.compile(
    r"""(["'])([^"'\\\n]{1,100})\1(\s*:\s*)("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|[^\s"',}\]\[]+)"""
)
"""`"password": "x"`, `'token': 'x'` (a Python dict in a log), `"pin": 1234`."""
YAML_SECRET = re.compile(
    r"(?m)^([ \t]*(?:- )?)([A-Za-z_][\w.-]{0,100})([ \t]*:[ \t]+)((?i:(?:bearer|basic|token)[ \t]+)?)"
    r"([^\s\"'\[{](?:[^\n]*\S)?)[^\S\n]*$"
)
"""`password: correct horse battery` at the start of a line (YAML, HTTP headers): the value runs to the line's last
non-blank character. Greedy, then one step back to that character: a lazy value followed by `[ \t]*$` retried the
whole run of blanks at every character (`key: v` and 20,000 spaces took seconds)."""
CLI_SECRET = re.compile(
    r"(?<![\w-])(--?[A-Za-z][\w-]{0,100})(=|[ \t]+)(\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*'|[^\s\"'<>-][^\s\"'<>]*)"
)
"""`--password hunter2`, `--token=abc`: a secret flag's argument. A double-quoted value ends at its first unescaped
quote (`--token="a\\"b"`, a JSON document in a variable), so its rest is not left for the next pass to find."""
LOGIN_P = re.compile(
    r"(\blogin\b(?:(?!\blogin\b|[ \t]-p[ \t])[^\n])*[ \t]-p[ \t]+)(\"[^\"\n]*\"|'[^'\n]*'|[^\s\"'<>]+)"
)
"""`docker login -u bob -p hunter2`. The words after `login` are read up to the next `login` (which starts its own
try): a lazy `[^\n]*?` read the rest of the line again from every `login` on it, quadratic in a line of them."""
ASSIGNMENT = re.compile(
    r"(?<![\w.-])([A-Za-z_][\w.-]{0,100}?)([ \t]*(?::(?!//)|=(?!=))[ \t]*)"
    r"((?i:(?:bearer|basic|token)[ \t]+)?)(\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*'|[^\s\"'&;\\<>]+)"
)
"""`NAME=value`, `name: value`, `?token=value&`: the value is replaced when the name looks secret (a comma does
not end it: `PASSWORD=ab,cd` loses all of `ab,cd`)."""

IPV4 = re.compile(r"(?<![\w.])(?<!==)\d{1,3}(?:\.\d{1,3}){3}(?![\w]|\.\d)")
IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:.])")
MAC = re.compile(r"(?<![\w:-])[0-9A-Fa-f]{2}(?:([:-])[0-9A-Fa-f]{2})(?:\1[0-9A-Fa-f]{2}){4}(?![\w:-])")
GPU_UUID = re.compile(
    r"(?<![\w-])((?:GPU|MIG)-)?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})(?![\w-])"
)
"""`GPU-<uuid>`/`MIG-<uuid>` always; a bare UUID only when it is a known GPU's (torch prints them without `GPU-`):
the docker daemon's ID and other UUIDs stay."""
SERIAL = re.compile(r"(?im)^([ \t]*(?:Serial Number|Serial)[ \t]*:[ \t]*)(?!N/A\b)(\S+)")
"""nvidia-smi -q's `Serial Number : 1650123456789` (board serials; `N/A` on consumer cards)."""

NOT_IDENTIFYING = frozenset(
    [
        "localhost",
        "root",
        "ubuntu",
        "debian",
        "admin",
        "ec2-user",
        "cloud-user",
        "centos",
        "fedora",
        "rocky",
        "docker",
        "nvidia",
        "user",
        "host",
        "default",
        "nobody",
        "linux",
        "mldoctor",
    ]
)
"""Default names of cloud images and system accounts (and the probe image's user): they identify nobody, and
replacing `ubuntu` would rewrite the OS facts (`ID=ubuntu`) that the rules read."""


def is_secret_name(name: str) -> bool:
    words = [word for word in re.split(r"[^a-z0-9]+", name.lower()) if word]
    if len(words) > 1 and words[-1] == "pass":  # DOCKER_PASS, db-pass; not `PASS` (a status) or `bypass`
        return True
    return any(word.endswith(SECRET_WORDS) or word in SECRET_EXACT_WORDS for word in words)


BARE_SCHEMES = ("", "bearer", "basic", "token")
ESCAPED_BLANKS = re.compile(r"(?:\\[nrt]|\s)+")


def _already_redacted(value: str) -> bool:
    """Markers and blanks only, escaped ones included: the private key of a service-account JSON leaves
    `[REDACTED:private-key]\\n` behind, and its name must not count it again."""
    return bool(MARKER.search(value)) and not ESCAPED_BLANKS.sub("", MARKER.sub("", value))


def _redacted(kind: str) -> str:
    return f"[REDACTED:{kind}]"


class Pseudonyms:
    """One consistent map per bundle: the n-th distinct value of a kind becomes that kind's n-th placeholder."""

    def __init__(self) -> None:
        self.maps: dict[str, dict[str, str]] = {}
        self.issued: set[str] = set()

    def __call__(self, kind: str, value: str) -> str:
        if value in self.issued:
            return value
        table = self.maps.setdefault(kind, {})
        key = value.lower() if kind in ("ipv6", "mac", "gpu-uuid") else value
        if kind == "mac":  # 52-54-00-12-34-56 and 52:54:00:12:34:56 are one address
            key = key.replace("-", ":")
        elif kind in ("ipv4", "ipv6"):  # fe80::1 and fe80:0:0:0:0:0:0:1 too
            key = str(ipaddress.ip_address(value))
        if kind == "host":  # gpu-01 and gpu-01.corp.example.com are one host
            key = key.lower().split(".")[0]
        if key not in table:
            table[key] = PLACEHOLDERS[kind](len(table) + 1, value)
            self.issued.add(table[key])
        return table[key]

    def counts(self) -> dict[str, int]:
        return {kind: len(table) for kind, table in sorted(self.maps.items())}


def _ipv4(n: int, original: str) -> str:
    base = "192.0.2.0" if n < 255 else "198.18.0.0"  # TEST-NET-1, then the benchmarking range
    return str(ipaddress.IPv4Address(base) + (n if n < 255 else n - 254))


PLACEHOLDERS: dict[str, Callable[[int, str], str]] = {
    "host": lambda n, _: f"host{n}",
    "user": lambda n, _: f"user{n}",
    "ipv4": _ipv4,
    "ipv6": lambda n, _: str(ipaddress.IPv6Address("2001:db8::") + n),
    "mac": lambda n, _: "02:00:00:00:{:02x}:{:02x}".format(*divmod(n, 256)),
    "gpu-uuid": lambda n, _: f"00000000-0000-0000-0000-{n:012x}",
    "serial": lambda n, _: f"SERIAL{n}",
}


class Redactor:
    """Scrubs text and JSON-ready data; counts what it replaced, per class, for the manifest.

    `names` are this machine's host names and users (from the facts) to pseudonymise with `hosts`; `secrets` are
    literal secret values to remove wherever they appear (the values of mldoctor's secret-named variables).
    """

    def __init__(
        self,
        enabled: bool = True,
        hosts: bool = False,
        gpu_ids: bool = False,
        hostnames: Iterable[str] = (),
        users: Iterable[str] = (),
        secrets: Iterable[str] = (),
        gpu_uuids: Iterable[str] = (),
    ) -> None:
        self.enabled, self.hosts, self.gpu_ids = enabled, hosts, gpu_ids
        self._gpu_uuids = {GPU_UUID.sub(r"\2", u).lower() for u in gpu_uuids if u}
        self.counts: Counter[str] = Counter()
        self.pseudonyms = Pseudonyms()
        literal = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)
        self._secrets = re.compile("|".join(map(re.escape, literal))) if literal else None
        hostnames = [label for name in hostnames for label in (name, name.split(".")[0])]  # FQDN and short
        self._names = [
            (kind, _word_pattern(names, re.IGNORECASE if kind == "host" else 0))
            for kind, names in (("host", hostnames), ("user", list(users)))
            if _identifying(names)
        ]

    @classmethod
    def off(cls) -> Redactor:
        """`--no-redact`: everything goes into the bundle as collected."""
        return cls(enabled=False)

    def scrub(self, text: str) -> str:
        if not self.enabled or not text:
            return text
        for kind, pattern in TOKEN_SHAPES:
            text = pattern.sub(lambda m, kind=kind: self._count(kind, m.group(0)), text)
        text = PREFIXED.sub(lambda m: self._count(str(m.lastgroup).replace("_", "-"), m.group(0)), text)
        for kind, pattern in CONTEXT_SECRETS:
            text = pattern.sub(lambda m, kind=kind: self._replace_group(m, 1, kind), text)
        if self._secrets is not None:
            text = self._secrets.sub(lambda m: self._count("environment-secret", m.group(0)), text)
        text = BEARER.sub(lambda m: self._replace_group(m, 1, "bearer-token"), text)
        text = URL_USERINFO.sub(self._url_userinfo, text)
        text = QUOTED_SECRET.sub(self._quoted_secret, text)
        text = YAML_SECRET.sub(lambda m: self._named_value(m, 2, 5), text)
        text = CLI_SECRET.sub(self._cli_secret, text)
        text = LOGIN_P.sub(lambda m: self._replace_group(m, 2, "secret-value"), text)
        text = ASSIGNMENT.sub(lambda m: self._named_value(m, 1, 4), text)
        if self.gpu_ids:
            text = GPU_UUID.sub(self._gpu_uuid, text)
            text = SERIAL.sub(lambda m: m.group(1) + self.pseudonyms("serial", m.group(2)), text)
        if self.hosts:
            text = self._pseudonymise(text)
        return text

    def scrub_data(self, value: Any, key: str = "", numbers: bool = False) -> Any:
        """JSON-ready data, scrubbed string by string; a string under a secret-looking key is replaced whole, and
        with `numbers` (collected files, not mldoctor's own documents, whose counts are keyed by class names) so
        is a number ({"password": 12345})."""
        if not self.enabled:
            return value
        if isinstance(value, dict):
            return {self.scrub(str(k)): self.scrub_data(v, str(k), numbers) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub_data(v, key, numbers) for v in value]
        if isinstance(value, str):
            if key and is_secret_name(key) and value and not MARKER.fullmatch(value):
                return self._count("secret-value", value)
            return self.scrub(value)
        if numbers and isinstance(value, int | float) and not isinstance(value, bool) and key and is_secret_name(key):
            return self._count("secret-value", str(value))
        return value

    def scrub_file(self, name: str, text: str) -> str:
        """A file of the bundle: JSON is scrubbed as data (so the result stays valid JSON), anything else as text."""
        if name.endswith(".json") and self.enabled:
            try:
                data = json.loads(text)
            except (ValueError, RecursionError):  # a document nested too deep to parse is still text to scrub
                return self.scrub(text)
            return json.dumps(self.scrub_data(data, numbers=name.startswith("raw/")), indent=2) + "\n"
        if name.endswith(".html") and self.enabled:
            return self._scrub_html(text)
        return self.scrub(text)

    def _scrub_html(self, page: str) -> str:
        """Text between tags, unescaped, scrubbed and escaped again: a value that runs to the end of a word or a
        line (`HF_TOKEN=x</td></tr>`) must not swallow markup, and `&quot;` must read as the quote it is. Tags and
        the inline stylesheet are mldoctor's own and stay as they are."""
        parts = HTML_TAG.split(page)
        in_style = False
        for i, part in enumerate(parts):
            if i % 2:  # a tag
                in_style = part.lower().startswith("<style") or (in_style and not part.lower().startswith("</style"))
            elif part and not in_style:
                parts[i] = html.escape(self.scrub(html.unescape(part)), quote=False)
        return "".join(parts)

    def scrub_report(self, report: Report) -> Report:
        """The report with facts and results scrubbed as data: every renderer then escapes clean strings."""
        if not self.enabled:
            return report
        return replace(
            report,
            host=self.scrub(report.host),
            facts=from_data(Facts, self.scrub_data(to_data(report.facts))),
            results=[from_data(CheckResult, self.scrub_data(to_data(r))) for r in report.results],
        )

    def summary(self) -> dict[str, Any]:
        """What the manifest says about redaction (never the map itself: it stays on the user's machine)."""
        if not self.enabled:
            return {"enabled": False}
        return {
            "enabled": True,
            "hosts": self.hosts,
            "gpu_ids": self.gpu_ids,
            "replaced": dict(sorted(self.counts.items())),
            "pseudonyms": self.pseudonyms.counts(),
        }

    def _count(self, kind: str, original: str) -> str:
        self.counts[kind] += 1
        return _redacted(kind)

    def _replace_group(self, match: re.Match[str], group: int, kind: str) -> str:
        value = match.group(group)
        if MARKER.fullmatch(value):
            return match.group(0)
        start, end = match.span(group)
        whole = match.group(0)
        offset = match.start()
        return whole[: start - offset] + self._count(kind, value) + whole[end - offset :]

    def _url_userinfo(self, match: re.Match[str]) -> str:
        """The password of `scheme://user:password@host`; the whole user part of an http(s) URL without one."""
        scheme, userinfo = match.groups()
        if not userinfo or MARKER.fullmatch(userinfo):
            return match.group(0)
        user, colon, password = userinfo.partition(":")
        if colon:
            if not password or MARKER.fullmatch(password):
                return match.group(0)
            return f"{scheme}://{user}:{self._count('url-password', password)}@"
        if scheme.lower().rpartition("+")[2] not in TOKEN_IN_USER_SCHEMES:
            return match.group(0)
        return f"{scheme}://{self._count('url-token', userinfo)}@"

    def _quoted_secret(self, match: re.Match[str]) -> str:
        quote, name, separator, value = match.groups()
        bare = value[1:-1] if value[:1] in "\"'" else value
        if not is_secret_name(name) or not bare or _already_redacted(bare) or value in ("null", "true", "false"):
            return match.group(0)
        inner = "'" if value[:1] == "'" else '"'  # a bare number becomes a string: the JSON stays valid
        return f"{quote}{name}{quote}{separator}{inner}{self._count('secret-value', bare)}{inner}"

    def _named_value(self, match: re.Match[str], name_group: int, value_group: int) -> str:
        name, value = match.group(name_group), match.group(value_group)
        if not is_secret_name(name) or value in ('""', "''", "{", "["):  # `creds: {` opens a structure
            return match.group(0)
        if _already_redacted(value.strip("\"'")) or MARKER.sub("", value).strip("\"' ").lower() in BARE_SCHEMES:
            return match.group(0)  # already redacted (`Basic [REDACTED:...]` included)
        return self._replace_group(match, value_group, "secret-value")

    def _cli_secret(self, match: re.Match[str]) -> str:
        """`--password=x` for any secret-looking flag; `--password x` only when the flag's last word is secret
        (`--password-stdin reg.example.com` names no secret)."""
        flag, separator = match.group(1), match.group(2)
        last = re.split(r"[^a-z0-9]+", flag.lower())[-1]
        if not is_secret_name(flag if separator == "=" else last):
            return match.group(0)
        return self._named_value(match, 1, 3)

    def _pseudonymise(self, text: str) -> str:
        text = MAC.sub(self._mac, text)
        text = IPV6.sub(lambda m: self._address(m, "ipv6", ipaddress.IPv6Address), text)
        text = IPV4.sub(lambda m: self._address(m, "ipv4", ipaddress.IPv4Address), text)
        for kind, pattern in self._names:
            text = pattern.sub(lambda m, kind=kind: self.pseudonyms(kind, m.group(0)), text)
        return text

    def _gpu_uuid(self, match: re.Match[str]) -> str:
        """One pseudonym per GPU whether or not its UUID carries the `GPU-` prefix (NVML's and nvidia-smi's do,
        torch's in the probe does not); a bare UUID that is no known GPU's is left alone."""
        prefix, core = match.group(1) or "", match.group(2).lower()
        if not prefix and core not in self._gpu_uuids and core not in self.pseudonyms.issued:
            return match.group(0)
        return prefix + self.pseudonyms("gpu-uuid", core)

    def _mac(self, match: re.Match[str]) -> str:
        value = match.group(0)
        if value.replace("-", ":").lower() in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"):
            return value
        return self.pseudonyms("mac", value)

    def _address(self, match: re.Match[str], kind: str, parse: Callable[[str], Any]) -> str:
        value = match.group(0)
        try:
            address = parse(value)
        except ValueError:
            return value
        if address.is_loopback or address.is_unspecified:
            return value
        return self.pseudonyms(kind, value)


@functools.cache
def _reserved() -> frozenset[str]:
    """Words no pseudonym may replace: default accounts, every word of a check id (a user called `probe` must
    not turn `probe.cuda` into `user1.cuda`), every field name of the report's schema (a host called `kernel` must
    not rename the `kernel` key re-diagnosis reads) and the declared VOCABULARY of values the rules and gatherers
    compare facts with (a host called `snap` must not turn the Docker flavour `snap` into `host1`)."""
    from mldoctor.model import Report
    from mldoctor.policy import Policy
    from mldoctor.rules import REGISTRY

    words = {word for check_id in REGISTRY for word in check_id.split(".")}
    words |= {field.name for field in dataclasses.fields(Report)}
    schema: set[str] = set()
    for cls in (Facts, CheckResult, Policy):
        schema |= _schema_words(cls)
    return NOT_IDENTIFYING | VOCABULARY | words | schema


def _schema_words(cls: Any, seen: set[Any] | None = None) -> set[str]:
    seen = set() if seen is None else seen
    if not dataclasses.is_dataclass(cls) or cls in seen:
        return set()
    seen.add(cls)
    words = set()
    for name, hint in type_hints(cls).items():
        words.add(name.lower())
        for part in (hint, *typing.get_args(hint), *(a for arg in typing.get_args(hint) for a in typing.get_args(arg))):
            words |= _schema_words(part, seen)
    return words


def _identifying(names: Iterable[str]) -> list[str]:
    """The names worth replacing: not reserved, not a bare number (a uid)."""
    return sorted(
        {n for n in names if n and len(n) >= 2 and not n.isdigit() and n.lower() not in _reserved()},
        key=len,
        reverse=True,
    )


def _word_pattern(names: Iterable[str], flags: int) -> re.Pattern[str]:
    """The names as whole words: `alice` in /home/alice/ and alice@gpu-01, not in malice."""
    alternatives = "|".join(re.escape(n) for n in _identifying(names))
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])", flags)


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """The values of secret-named variables, to be removed verbatim wherever a log repeats them."""
    return [value for name, value in environ.items() if is_secret_name(name) and value]


ENV_NAMES = frozenset(
    [
        "PATH",
        "LD_LIBRARY_PATH",
        "LD_PRELOAD",
        "PYTHONPATH",
        "PYTHONHOME",
        "VIRTUAL_ENV",
        "CONDA_PREFIX",
        "CONDA_DEFAULT_ENV",
        "XDG_RUNTIME_DIR",
        "XDG_CONFIG_HOME",
        "LANG",
        "LC_ALL",
        "TZ",
        "container",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
    ]
)
ENV_PREFIXES = ("NVIDIA_", "CUDA_", "CUDNN_", "NCCL_", "DOCKER_", "TORCH_", "PYTORCH_", "OMP_", "MKL_", "SLURM_")


def relevant_environment(environ: Mapping[str, str]) -> tuple[dict[str, str], int]:
    """The variables support needs, by an allowlist (a blocklist misses AWS_SECRET_ACCESS_KEY; vllm#9293), and
    how many others were left out. Secret-named ones that pass (DOCKER_AUTH_CONFIG) are scrubbed like any text."""
    kept = {k: v for k, v in sorted(environ.items()) if k in ENV_NAMES or k.startswith(ENV_PREFIXES)}
    return kept, len(environ) - len(kept)


def for_facts(facts: Facts, environ: Mapping[str, str], hosts: bool = False, gpu_ids: bool = False) -> Redactor:
    """The bundle's one Redactor: this machine's names come from the facts (its host name, the daemon's, the
    endpoint's; the user running mldoctor and the endpoint's), the literal secrets from the environment. Accounts of
    services (a port's owner, the image's user) name no person and are left alone."""
    hostnames, users, gpu_uuids = [], [], []
    if facts.nvidia is not None:
        gpu_uuids += [gpu.uuid for gpu in facts.nvidia.nvml.gpus if gpu.uuid]
    if facts.probe is not None and facts.probe.document is not None:
        gpu_uuids += [device.uuid for device in facts.probe.document.devices if device.uuid]
    if facts.host is not None:
        hostnames.append(facts.host.hostname)
        if facts.host.node_name:
            hostnames.append(facts.host.node_name)
        if facts.host.user is not None:
            users.append(facts.host.user.name)
    if facts.docker is not None:
        if facts.docker.daemon is not None:
            hostnames.append(facts.docker.daemon.name)
        remote = urlsplit(facts.docker.endpoint.url)
        if remote.hostname and not _is_address(remote.hostname):
            hostnames.append(remote.hostname)
        if remote.username:
            users.append(remote.username)
    return Redactor(
        hosts=hosts,
        gpu_ids=gpu_ids,
        hostnames=hostnames,
        users=users,
        secrets=secret_values(environ),
        gpu_uuids=gpu_uuids,
    )


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
