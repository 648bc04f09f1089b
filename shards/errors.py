"""The one exception type for user mistakes and bad data in `shards`."""


class ShardsError(Exception):
    """A user-facing error: the message names the thing, the rule and what to do next."""
