"""The whole Deep Bootstrap pipeline offline on scikit-learn's real digits: `python -m demo --help`."""
