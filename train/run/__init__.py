"""One run: `loop.run_training` (the training loop) and `runfolder` (the one owner of a run folder's files)."""
