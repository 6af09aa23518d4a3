"""Rules: pure functions from facts to findings. Importing this package registers every check."""

from mldoctor.rules import docker, host  # noqa: F401  (registration happens on import)
from mldoctor.rules.registry import REGISTRY, Check

__all__ = ["REGISTRY", "Check"]
