"""The training loop, checkpoints, processes, guards and the command-line entry."""
