"""Rules: pure functions from facts to findings. Importing this package registers every check."""

# Import order is registration order, which is evaluation and report order: the chain, first link first.
from mldoctor.rules import docker, nvidia, host, probe, bench  # noqa: F401, I001
from mldoctor.rules.registry import REGISTRY, Check

__all__ = ["REGISTRY", "Check"]
