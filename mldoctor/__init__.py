"""mldoctor: can this machine run GPU training in Docker, and if not, what exactly fixes it."""

__version__ = "0.1.0"
