"""The Trainer's steps: a variant overrides one (the example of docs/training.md, run as it is printed there)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from m2unet.training.engine import MultiDatasetTrainer, Trainer, trainer_class
from m2unet.training.presets import preset_for
from m2unet.weights import read_metadata

DOC = Path(__file__).resolve().parents[1] / "docs" / "training.md"


def docs_example() -> dict:
    """The names the docs' ``class WarmupTrainer`` block defines (its ``__main__`` part not run)."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    (code,) = [b for b in blocks if "class WarmupTrainer(Trainer)" in b]
    namespace = {"__name__": "docs_example"}
    exec(compile(code, str(DOC), "exec"), namespace)
    return namespace


def test_the_config_picks_the_trainer():
    assert trainer_class(preset_for("drive")) is Trainer
    assert trainer_class(preset_for("drive,chase_db1")) is MultiDatasetTrainer


def test_docs_warmup_variant_changes_only_the_learning_rate(tmp_path):
    from test_training_run import make_folder

    warmup = docs_example()["WarmupTrainer"]
    assert issubclass(warmup, Trainer) and warmup.warmup_epochs == 5
    folder = make_folder(tmp_path / "tiny", 2)
    config = preset_for(str(folder))
    config.update(epochs=2, batch_size=2, val_every=1)
    summary = warmup(config, tmp_path / "run", progress=False, test=False, precision="32-true").run()
    assert summary["epochs_done"] == 2 and summary["best_epoch"] in (1, 2)
    rows = (tmp_path / "run" / "metrics.csv").read_text().strip().splitlines()[1:]
    assert [float(r.split(",")[5]) for r in rows] == pytest.approx([config["lr"] / 5, 2 * config["lr"] / 5])  # 1/5, 2/5 of the preset's
    assert read_metadata(tmp_path / "run" / "best.safetensors")["epochs_trained"] == 2
