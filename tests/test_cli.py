"""The command line as a user runs it: help, info, datasets check, and errors without tracebacks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from m2unet.cli import main

M2UNET = [sys.executable, "-m", "m2unet"]


def run(*args, cwd=None):
    return subprocess.run([*M2UNET, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_every_command_has_help_with_an_example():
    runner = CliRunner()
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for name, command in main.commands.items():
        if hasattr(command, "commands"):
            continue
        help_text = runner.invoke(main, [name, "--help"]).output
        assert "Example" in help_text, name


def test_info_prints_table_2_columns():
    result = CliRunner().invoke(main, ["info", "--model", "m2unet", "--size", "544", "--size", "960"])
    assert result.exit_code == 0, result.output
    assert "549,748" in result.output
    assert "1.42" in result.output and "4.42" in result.output


def test_info_bad_size_is_one_line():
    result = run("info", "--size", "abc")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "--size 'abc'" in result.stderr


def test_datasets_check_counts_and_reports_bad_files(datasets_root, tmp_path):
    good = run("datasets", "check", datasets_root / "CHASE_DB1")
    assert good.returncode == 0, good.stderr
    assert "chase_db1 train: 8/8 readable" in good.stdout and "chase_db1 test: 20/20 readable" in good.stdout

    broken = tmp_path / "CHASE_DB1"
    shutil.copytree(datasets_root / "CHASE_DB1", broken)
    for path in broken.iterdir():
        path.chmod(0o644)
    (broken / "Image_03L.jpg").write_bytes(b"")
    (broken / "Image_12R_1stHO.png").write_bytes(b"\x89PNG garbage")
    result = run("datasets", "check", broken)
    assert result.returncode == 1
    assert "Image_03L.jpg: file is empty" in result.stdout
    assert "Image_12R_1stHO.png" in result.stdout
    assert "chase_db1 train: 7/8 readable" in result.stdout and "chase_db1 test: 19/20 readable" in result.stdout
    assert "Traceback" not in result.stderr and "2 problem(s) found" in result.stderr


def test_datasets_check_missing_folder(tmp_path):
    result = run("datasets", "check", tmp_path / "nope")
    assert result.returncode != 0 and "Traceback" not in result.stderr


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "m2unet"
    assert script.is_file(), "pip install should create the m2unet console script"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "segment" in result.stdout
    assert run("--version").stdout.startswith("m2unet")
