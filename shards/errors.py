"""Errors for user mistakes and bad data: one base class for the whole toolkit, one subclass per package.

Every package's error derives from `ToolkitError`, so one CLI wrapper (`shards.entry.run_cli`) turns any
of them into the one-line `error: ...` and exit status 2.
"""


class ToolkitError(Exception):
    """A user-facing error: the message names the thing, the value, the rule and what to do next."""


class ShardsError(ToolkitError):
    """A user mistake or bad data in the dataset format (`shards`)."""
