"""The one exception type for user mistakes in `dogbird` (bad flags, unrecognised sources, missing classes)."""

from shards.errors import ToolkitError


class DogbirdError(ToolkitError):
    """A user-facing error: the message names the thing, the value, the rule and what to do next."""
