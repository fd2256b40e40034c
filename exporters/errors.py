"""The exporters' user-facing errors, apart from the target interface so that the target registry
(targets/__init__.py) imports without torch: reading a results file asks it for runtime names."""

from __future__ import annotations

from mvit.errors import MvitError


class ExportError(MvitError):
    """A user-facing failure: the message is one line saying what was wrong and what to do."""


class TargetNotInstalled(ExportError):
    pass
