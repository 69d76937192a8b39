"""podwall: isolate Podman container networks as code."""

__version__ = "0.1.0"
