"""The training loop, its callbacks, optimizer/schedule and checkpoints."""
