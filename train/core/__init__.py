"""What a run is, independent of data and files: config and presets, schedules, samplers and ledger,
DDP helpers, models, augmentation, metrics and T(n). Imports no other part of `train` but `train.errors`."""
