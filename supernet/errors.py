"""The one exception family users see: each carries a message that says what is wrong and how
to fix it. Entry points print the message and exit non-zero instead of a traceback."""

from __future__ import annotations


class NASError(Exception):
    """Base class of every error caused by input the user can correct."""


class DatasetError(NASError):
    """A dataset that is missing, cannot be downloaded, or is empty."""


class CheckpointError(NASError):
    """A checkpoint that does not exist, is corrupt, or belongs to another space."""


class ConfigError(NASError, ValueError):
    """A configuration value that is not allowed."""
