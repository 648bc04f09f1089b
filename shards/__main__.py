"""`python -m shards --help`: see shards/cli.py."""

import sys

from shards.cli import main

if __name__ == "__main__":
    sys.exit(main())
