"""hygen: multi-task multi-agent RL with hybrid offline/online training."""

__version__ = "0.1.0"
