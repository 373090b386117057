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


def keep_another_commands_output(path, command: str, overwrite: bool, recorded) -> None:
    """Raise unless ``command`` may write ``path``: it does not exist yet, ``overwrite`` was given, or the command it
    records (``recorded(path)``; None: none) is ``command`` itself, whose rerun may refresh it. Anything else would lose
    what only that output records."""
    from pathlib import Path

    if overwrite or not Path(path).is_file():
        return
    earlier_command = recorded(path)
    if earlier_command != command:
        made = f"made by another command ({earlier_command})" if earlier_command else "this version did not write"
        raise M2UNetError(f"{path}: {made}; give another --out, or --overwrite to replace it")


# What to install for a missing third-party module (by top-level name); others: `pip install NAME`.
INSTALL_HINTS = {
    "torch": "pip install 'm2unet[train]' (PyTorch: training, export, --backend torch). Without it, `m2unet segment` runs the "
             "shipped models and, with --weights MODEL.onnx|MODEL.xml, models exported with `m2unet export` where PyTorch is installed",
    "lightning": "pip install 'm2unet[train]'", "kornia": "pip install 'm2unet[train]'",
    "onnx": "pip install onnx", "onnxruntime": "pip install onnxruntime", "openvino": "pip install 'm2unet[deploy]'",
    "nncf": "pip install 'm2unet[deploy]'", "sklearn": "pip install scikit-learn",
    "ray": "pip install 'm2unet[cluster]'", "pyarrow": "pip install pyarrow",
}


def missing_module_message(name: str) -> str:
    top = (name or "?").split(".")[0]
    return f"{top} is not installed, and this needs it: {INSTALL_HINTS.get(top, f'pip install {top}')}"


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
        except ModuleNotFoundError as error:
            if (error.name or "").split(".")[0] == "m2unet":
                raise  # a broken install of this package itself: the traceback is what a bug report needs
            click.echo(f"error: {missing_module_message(error.name)}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper
