"""User mistakes: reported as one line that says what is wrong and what to do."""

from __future__ import annotations


class UserError(Exception):
    """A bad config, a missing data set or file, an unwritable folder: not a bug of the code."""
