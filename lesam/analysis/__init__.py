"""Analyses of trained checkpoints: `python analyze.py analysis=<name> checkpoint=PATH`."""
