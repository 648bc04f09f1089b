"""`python -m cifar5m generate --help`: see cifar5m/cli.py."""

import sys

from cifar5m.cli import main

if __name__ == "__main__":
    sys.exit(main())
