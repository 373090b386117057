"""User-facing errors: one line that names the file and what is wrong."""

import functools
import sys


class M2UNetError(Exception):
    """An error the CLI reports as a single line (no traceback) before exiting non-zero."""


class InputFileError(M2UNetError):
    """A file given by the user is missing, empty, truncated, unreadable or of the wrong size."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def one_line_errors(command):
    """CLI decorator: library errors become one line on stderr and exit status 1, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        import click

        try:
            return command(*args, **kwargs)
        except M2UNetError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper
