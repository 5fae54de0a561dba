"""Subcommands of the ``hygen`` console script (see hygen.cli)."""
