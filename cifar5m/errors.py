"""The one exception type for user mistakes in `cifar5m` (bad flags, models, labelers, folders)."""

from shards.errors import ToolkitError


class Cifar5mError(ToolkitError):
    """A user-facing error: the message names the thing, the value, the rule and what to do next."""
