"""The one exception type for user mistakes in `train` (bad flags, bad data, a run folder in the way)."""

from shards.errors import ToolkitError


class TrainError(ToolkitError):
    """A user-facing error: the message names the thing, the value, the rule and what to do next."""
