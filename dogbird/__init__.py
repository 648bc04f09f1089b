"""ImageNet (folder | HF parquet | WebDataset) -> hunting dogs vs birds -> WebDataset shards.

    python -m dogbird build --imagenet /data/imagenet --out out/dogbird [--res 64] [--workers 8]

The paper's ImageNet-DogBird task (Nakkiran, Neyshabur, Sedghi, ICLR 2021, appendix): label 0 = the 63
ImageNet classes under WordNet `hunting_dog.n.01`, label 1 = the 59 under `bird.n.01`. Imports `shards` only.

    from dogbird import BuildConfig, build_dataset
    result = build_dataset(BuildConfig(source="/data/imagenet", out_dir="out/dogbird").validate())
"""

from dogbird.build import BuildResult
from dogbird.build import run_build as build_dataset
from dogbird.config import BuildConfig
from dogbird.errors import DogbirdError

__all__ = ["BuildConfig", "BuildResult", "DogbirdError", "build_dataset"]
