"""ImageNet (folder | HF parquet | WebDataset) -> hunting dogs vs birds -> WebDataset shards.

    python -m dogbird build --imagenet /data/imagenet --out out/dogbird [--res 64] [--workers 8]

The paper's ImageNet-DogBird task (Nakkiran, Neyshabur, Sedghi, ICLR 2021, appendix): label 0 = the 63
ImageNet classes under WordNet `hunting_dog.n.01`, label 1 = the 59 under `bird.n.01`. Imports `shards` only.
"""
