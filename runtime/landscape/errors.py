"""The error of the landscape engines: a user-caused failure (bad settings, a run that diverges)
with a message and a hint; the tasks turn it into a located diagnostic."""

from __future__ import annotations


class LandscapeError(Exception):
    """A failure a user can fix: ``message`` says what happened (with the numbers involved),
    ``hint`` what to change."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
