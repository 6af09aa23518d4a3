"""An image check's results as a `Report`, so every existing renderer (table, json, junit, markdown, github,
prometheus) prints it unchanged; the image's facts and the targets travel in the JSON."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import datetime, timezone

from mldoctor import __version__
from mldoctor.facts import Facts
from mldoctor.image.facts import ImageFacts
from mldoctor.image.targets import Targets
from mldoctor.model import SCHEMA_VERSION, CheckResult, Report
from mldoctor.policy import Policy

AREA = "image"


@dataclass
class ImageReportFacts(Facts):
    """The host sections stay empty; the image, the targets it was judged against and the Dockerfile linted."""

    image: ImageFacts | None = None
    targets: Targets | None = None
    dockerfile: str | None = None


def build(
    results: list[CheckResult],
    image: ImageFacts | None,
    targets: Targets,
    policy: Policy,
    dockerfile: str | None = None,
) -> Report:
    return Report(
        schema_version=SCHEMA_VERSION,
        tool_version=__version__,
        created=datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        host=socket.gethostname(),
        facts=ImageReportFacts(image=image, targets=targets, dockerfile=dockerfile),
        results=results,
        policy=policy,
    )
