"""The equivalence margin of an experiment, declared before it runs (`--margin`, saved in experiment.json).

`--margin 0.01` is absolute (in the metric's units); `--margin 20%` is a fraction of the Real World's
generalisation gap (test - train at the read-out), taken at the lower end of its 95% CI so that seed
noise cannot widen the margin. A margin fixed before the data are seen is what makes an equivalence test
valid (Schuirmann 1987; Lakens 2017, "Equivalence Tests", Soc. Psychol. Personal. Sci. 8:355).

Default 20%: the Deep Bootstrap's claim is that the Ideal World's test error predicts the Real World's
far better than the Real World's train error does (Nakkiran et al. 2021, Sec. 1); a gap within a fifth of
the generalisation gap keeps four fifths of that advantage, and a relative margin means the same thing on
CIFAR-5m, DogBird and the digits, whose generalisation gaps differ tenfold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from train.errors import TrainError

DEFAULT_MARGIN = "20%"


@dataclass(frozen=True)
class Margin:
    """An absolute margin, or a fraction of the generalisation gap's lower 95% confidence bound."""

    value: float
    relative: bool

    @classmethod
    def parse(cls, text: str) -> Margin:
        """`0.01` (absolute) or `20%` (relative); anything else, or <= 0, is a one-line TrainError."""
        raw = str(text).strip()
        relative = raw.endswith("%")
        try:
            value = float(raw[:-1] if relative else raw)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0) or (relative and value > 100):
            raise TrainError(
                f"--margin={text}: give an absolute margin > 0 (e.g. 0.01) or a percentage of the "
                "generalisation gap in (0%, 100%] (e.g. 20%)"
            )
        return cls(value / 100 if relative else value, relative)

    def resolve(self, generalisation_gap_low: float) -> float:
        """The margin in the metric's units; nan when relative and the gap's lower bound is not > 0."""
        if not self.relative:
            return self.value
        if generalisation_gap_low is None or not math.isfinite(generalisation_gap_low) or generalisation_gap_low <= 0:
            return math.nan
        return self.value * generalisation_gap_low

    def describe(self) -> str:
        if self.relative:
            return f"{self.value:.0%} of the generalisation gap's lower 95% confidence bound"
        return f"{self.value:g} (absolute)"

    def to_text(self) -> str:
        return f"{self.value * 100:g}%" if self.relative else f"{self.value:g}"

    def to_dict(self) -> dict:
        return {"value": self.value, "relative": self.relative}

    @classmethod
    def from_dict(cls, data: dict | None) -> Margin:
        """A saved margin; an experiment.json without one gets the default."""
        if not data:
            return cls.parse(DEFAULT_MARGIN)
        return cls(float(data["value"]), bool(data["relative"]))
