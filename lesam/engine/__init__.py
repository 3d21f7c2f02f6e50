"""The training loop, run folders, checkpoints and the command-line entry."""
