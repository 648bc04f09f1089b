"""Getting samples to the model: opening and checking datasets, the resident decoded cache, the Real
and Ideal batch sources, and streaming from shards. Builds on `train.core`."""
