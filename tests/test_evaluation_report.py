"""The report's Table 2: every cell is a committed number or says why it is pending."""

from __future__ import annotations

from m2unet.evaluation.report import table2


def _result(model: str, dataset: str, f1: float, source: str = "m2unet", epochs_trained: int = 300) -> dict:
    return {"dataset": dataset, "pooled": {"crop": {"best": {"f1": f1}}},
            "weights": {"model": model, "source": source, "metadata": {"epochs": 300, "epochs_trained": epochs_trained}}}


def test_table2_names_sources_marks_short_runs_and_pending_cells():
    complexity = [{"model": m, "params": p, "size_mb": 1.0, "gmadds": {544: 1.0, 960: 3.0}} for m, p in (("m2unet", 549748), ("unet", 31031745))]
    results = [_result("m2unet", "drive", 0.8091, source="authors"), _result("m2unet", "drive", 0.8101),
               _result("unet", "drive", 0.7406, epochs_trained=159)]
    table = table2(complexity, results)
    m2unet_row = next(line for line in table.splitlines() if line.startswith("| M2U-Net | this repo"))
    unet_row = next(line for line in table.splitlines() if line.startswith("| U-Net | this repo"))
    assert "0.8091 (authors' weights) / 0.8101 (ours)" in m2unet_row
    assert "0.7406 (159/300 epochs: a lower bound; the full run is pending)" in unet_row
    assert "pending: not trained, needs a GPU (31 M parameters at 960²)" in unet_row and unet_row.count("pending:") == 2  # CHASE_DB1, HRF
    no_runs = table2(complexity, [])
    assert "pending: no evaluated run under results/" in no_runs  # no reason recorded: the generic one
    assert "| 0.8091 | 0.8006 | 0.7814 |" in table  # the paper's M2U-Net row
