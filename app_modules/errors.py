"""Errors a user can act on.

Every failure that reaches the UI, the CLI or the API is a ``TalkerError`` whose message says what
went wrong and what to do about it; anything else is a bug.
"""


class TalkerError(Exception):
    """A failure with a message meant for the user."""

    exit_code = 2


class BadInputError(TalkerError):
    """The user's input cannot be used (no face, silent audio, empty text, unreadable file)."""


class MissingWeightsError(TalkerError):
    """A checkpoint file is not on disk; the message names the file and the download command."""

    exit_code = 3


class BackendUnavailableError(TalkerError):
    """A backend cannot run here (package missing, needs a GPU, unknown name)."""

    exit_code = 4


class StageError(TalkerError):
    """A stage failed while running (API unreachable, time-out, decoder error)."""

    exit_code = 5

    def __init__(self, stage: str, message: str):
        super().__init__(f"{stage}: {message}")
        self.stage = stage


class BusyError(TalkerError):
    """The server is at its limit (renders waiting, live sessions); trying again later works."""

    exit_code = 6
