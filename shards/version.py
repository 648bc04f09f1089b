"""The toolkit's version, recorded in every manifest (its own module so `shards.writer` need not import
the `shards` package that imports it)."""

__version__ = "0.1.0"
