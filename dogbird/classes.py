"""The DogBird classes: which ImageNet-1k wnids are hunting dogs (label 0) and which are birds (label 1).

Lists ship as package data (dogbird/data/README.md names their sources). Loading checks the counts the
paper's code yields (63 hunting dogs, indices 159-221; 59 birds, indices 7-24, 80-100, 127-146).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).parent / "data"
CLASS_NAMES = ("hunting_dog", "bird")
DOG_COUNT, BIRD_COUNT = 63, 59


@dataclass(frozen=True)
class ImagenetClass:
    wnid: str
    index: int  # ImageNet-1k sorted-wnid index
    name: str
    label: int  # 0 hunting dog, 1 bird


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k wnids in sorted-wnid (= label index) order."""
    classes = json.loads((DATA / "imagenet1k_classes.json").read_text())["classes"]
    wnids = tuple(c["wnid"] for c in classes)
    if len(wnids) != 1000 or list(wnids) != sorted(wnids) or any(c["index"] != i for i, c in enumerate(classes)):
        raise RuntimeError(f"{DATA / 'imagenet1k_classes.json'}: not the 1000 sorted ImageNet-1k wnids")
    return wnids


@lru_cache(maxsize=1)
def dogbird_classes() -> dict[str, ImagenetClass]:
    """wnid -> class for the 122 DogBird classes (63 dogs, then 59 birds)."""
    lists = json.loads((DATA / "dogbird_wnids.json").read_text())
    wnids = imagenet_wnids()
    out = {}
    for label, (kind, count) in enumerate([("dog", DOG_COUNT), ("bird", BIRD_COUNT)]):
        detail = lists[f"{kind}_detail"]
        if len(detail) != count or [w for _, w, _ in detail] != lists[kind]:
            raise RuntimeError(f"{DATA / 'dogbird_wnids.json'}: expected {count} {kind} classes")
        for index, wnid, name in detail:
            if wnids[index] != wnid:
                raise RuntimeError(f"{DATA / 'dogbird_wnids.json'}: {wnid} is not ImageNet index {index}")
            out[wnid] = ImagenetClass(wnid, index, name, label)
    return out
