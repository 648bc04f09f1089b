"""CIFAR-5m-like data: diffusion sampling -> labelling -> WebDataset shards (`python -m cifar5m --help`)."""
