"""Readers that turn files (compose, Quadlet, Kubernetes YAML, shell scripts) into the inventory model.

Data flows one way: `discover` finds and classifies files, each reader turns one file's text into a
`FileResult` (a `model.Inventory` plus located problems), and nothing here knows about audit rules.
"""

from podwall.sources.base import FileResult, SourceFile, SourceKind

__all__ = ["FileResult", "SourceFile", "SourceKind"]
