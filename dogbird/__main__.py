"""`python -m dogbird build --help`: see dogbird/cli.py."""

import sys

from dogbird.cli import main

if __name__ == "__main__":
    sys.exit(main())
