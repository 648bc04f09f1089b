"""The one exception type for user mistakes in `demo` (bad settings, model folders, output folders)."""

from shards.errors import ToolkitError


class DemoError(ToolkitError):
    """A user-facing error: the message names the thing, the value, the rule and what to do next."""
