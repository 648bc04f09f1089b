"""Real vs Ideal comparisons made of runs: `bootstrap` (one n) and `sweep` (n x models x seeds)."""
