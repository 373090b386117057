"""User-facing errors: one line that names the file and what is wrong."""


class M2UNetError(Exception):
    """An error the CLI reports as a single line (no traceback) before exiting non-zero."""


class InputFileError(M2UNetError):
    """A file given by the user is missing, empty, truncated, unreadable or of the wrong size."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
