"""`mldoctor report`: run the full check, collect raw/, redact, write one zip for a support ticket.

The command shares `check`'s machinery: runner.select/run, GatherOptions, and the options and policy-file handling of
mldoctor.options. This module imports only click at the top, so `mldoctor --help` stays light.
"""

from __future__ import annotations

import os
import secrets
from typing import TYPE_CHECKING, Any

import click

from mldoctor import options

if TYPE_CHECKING:
    from mldoctor.bundle.redact import Redactor


def write_bundle(path: str, report: Any, collected: list[Any], redactor: Redactor) -> dict[str, Any]:
    """The report (scrubbed as data, then rendered three ways) and the raw files, written as one archive."""
    from mldoctor.bundle import archive, html
    from mldoctor.output import json as json_output
    from mldoctor.output import markdown

    clean = redactor.scrub_report(report)
    files = {
        archive.REPORT: json_output.render(clean),
        "report.md": markdown.render(clean),
        "report.html": html.render(clean),
        **{c.name: c.text for c in collected if c.text is not None},
    }
    info = {"mldoctor_version": clean.tool_version, "created": clean.created, "host": clean.host}
    return archive.write(path, files, redactor, {c.name: c.note for c in collected}, info)


def _target(output: str | None, report: Any, redactor: Redactor) -> str:
    """-o FILE, -o DIR (the default name in it), or the default name here; the name carries the pseudonym, and a
    random part: two runs started in the same second (a job array writing into one directory) never share a name."""
    from mldoctor.bundle import archive

    name = archive.default_name(redactor.scrub(report.host), report.created, secrets.token_hex(4))
    if output is None:
        return name
    return os.path.join(output, name) if os.path.isdir(output) else output


def check_output(output: str | None) -> None:
    """Refuse, before any check runs, an -o the bundle could not be written to: a directory that does not exist
    (`-o newdir/` is not created: a typo must not leave directories behind, least of all as root), one that is not
    writable, or something that is not a regular file (a zip renamed over /dev/null would replace the device)."""
    if output is None:
        return
    hint = "'-o' / '--output'"
    if os.path.isdir(output):
        if not os.access(output, os.W_OK | os.X_OK):
            raise click.BadParameter(f"cannot write in {output}", param_hint=hint)
        return
    if output.endswith(("/", os.sep)):
        raise click.BadParameter(f"directory {output} does not exist; create it first", param_hint=hint)
    if os.path.exists(output) and not os.path.isfile(output):
        raise click.BadParameter(f"{output} is not a regular file; give a file name or a directory", param_hint=hint)
    options.check_output_path(output)


def _summary(path: str, manifest: dict[str, Any], report: Any) -> list[str]:
    from mldoctor.output.table import summary_line

    size = os.path.getsize(path)
    lines = [f"wrote {path} ({size / 1024:,.0f} KiB, {len(manifest['files']) + 1} files)"]
    redaction = manifest["redaction"]
    if redaction["enabled"]:
        replaced = ", ".join(f"{n} {kind}" for kind, n in redaction["replaced"].items()) or "no secret found"
        pseudonyms = ", ".join(f"{n} {kind}" for kind, n in redaction["pseudonyms"].items())
        lines.append(f"redacted: {replaced}" + (f"; pseudonyms: {pseudonyms}" if pseudonyms else ""))
    missing = [f"{name.removeprefix('raw/')}" for name, note in manifest["raw"].items() if note != "collected"]
    if missing:
        lines.append(f"not collected (see manifest.json): {', '.join(missing)}")
    lines.append(f"{summary_line(report)}; open report.html in it, attach the zip to the ticket")
    return lines


@click.command("report")
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    metavar="PATH",
    help="Write the zip here (a file, or an existing directory for the default name) "
    "[default: ./mldoctor-report-<host>-<UTC time>-<random>.zip].",
)
@click.option("--no-redact", is_flag=True, help="Do not redact anything (secrets included): for your own use.")
@click.option(
    "--redact-hosts", is_flag=True, help="Also replace host names, users, IP and MAC addresses by pseudonyms."
)
@click.option("--redact-gpu-ids", is_flag=True, help="Also replace GPU UUIDs and board serial numbers.")
@options.host_options
@options.probe_options
@click.pass_context
def command(
    ctx: click.Context,
    output: str | None,
    no_redact: bool,
    redact_hosts: bool,
    redact_gpu_ids: bool,
    no_probe: bool,
    no_container: bool,
    **_: Any,
) -> int:
    """Write a support bundle: report.json/.md/.html, raw/ outputs, a manifest; secrets redacted.

    Attach the zip to a support ticket; support re-diagnoses it with `mldoctor check --facts BUNDLE`.
    """
    from mldoctor import runner
    from mldoctor.bundle import collect
    from mldoctor.bundle.redact import Redactor, for_facts
    from mldoctor.facts import GatherOptions
    from mldoctor.facts.probe import probe_deadline

    if no_redact and (redact_hosts or redact_gpu_ids):
        raise click.BadParameter("--no-redact turns redaction off; --redact-hosts/--redact-gpu-ids need it: pick one")
    check_output(output)
    resolved = options.settings(ctx)
    policy, probe_options, timeout = resolved.policy, resolved.probe(no_container), resolved.value("timeout")
    checks = runner.select((), ["probe", "bench"] if no_probe else [])
    with options.progress(ci=False) as progress:
        waiting = (
            "" if no_probe else f", the probe container and its benchmarks (up to {probe_deadline(probe_options):g} s)"
        )
        progress.step(f"checking Docker, the NVIDIA stack, the host{waiting}…")
        report = runner.run(checks, GatherOptions(timeout=timeout, policy=policy, probe=probe_options))
        progress.step("collecting docker info, nvidia-smi -q, kernel messages, the package lists…")
        collected = collect.collect(report.facts, timeout)
        progress.step("redacting and writing the bundle…")
        redactor = Redactor.off() if no_redact else for_facts(report.facts, os.environ, redact_hosts, redact_gpu_ids)
        path = _target(output, report, redactor)
        manifest = write_bundle(path, report, collected, redactor)
    for line in _summary(path, manifest, report):
        click.echo(line)
    if no_redact:
        click.echo("mldoctor: warning: the bundle is NOT redacted (--no-redact): read it before you share it", err=True)
    return report.exit_code()
