"""`python -m demo run|train-models|real-digits|quality`: see demo/cli.py."""

import sys

from demo.cli import main

if __name__ == "__main__":
    sys.exit(main())
