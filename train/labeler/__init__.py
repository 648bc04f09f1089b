"""Fine-tune and measure classifiers (the labeler): `finetune` trains with the trainer and saves a timm
folder; `evaluate` reports accuracy, per-class accuracy and ECE of any timm folder on a dataset of ours."""
