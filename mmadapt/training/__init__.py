"""The training loop: DeepSpeed engines, the trainer, objectives, checkpoints, stopping, progress, metrics, FLOPs."""
