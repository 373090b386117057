"""``m2unet bench``: several models (--arch, --weights), backend/device validation, the GPU timing code on CPU."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from m2unet.cli import main
from m2unet.errors import M2UNetError
from m2unet.inference.bench import check_backends
from m2unet.inference.bench_report import chart_title, markdown_table, report_header
from m2unet.inference.bench_worker import CUDA_BACKENDS, abs_difference, padded_shape, run_cuda_cell, timing_summary
from m2unet.models import create_model
from m2unet.weights import save_weights


@pytest.fixture(scope="module")
def random_m2unet(tmp_path_factory):
    torch.manual_seed(0)
    return save_weights(create_model("m2unet"), tmp_path_factory.mktemp("weights") / "random-m2unet.safetensors", {"untrained": True})


@pytest.mark.parametrize("backend", ["cuda", "cuda-bf16"])
def test_run_cuda_cell_on_cpu(random_m2unet, backend):
    cell = run_cuda_cell(str(random_m2unet), backend, 64, 48, warmup=1, repeats=2, device="cpu")
    json.dumps(cell)  # the worker prints it as JSON
    assert cell["backend"] == backend and cell["device"] == "cpu" and cell["repeats"] == 2
    assert 0 < cell["min_ms"] <= cell["median_ms"] <= cell["max_ms"] and cell["first_call_ms"] > 0
    assert cell["images_per_s"] == pytest.approx(1000 / cell["median_ms"])
    assert cell["output_shape"] == [48, 64] and cell["output_finite"]
    assert 0.0 <= cell["output_min"] <= cell["output_max"] <= 1.0
    assert cell["peak_rss_mb"] > 50 and cell["peak_gpu_mb"] is None and cell["gpu_name"] is None
    if backend == "cuda":  # the fp32 baseline is the reference itself
        assert cell["max_abs_diff_vs_fp32"] is None
    else:  # bf16 autocast against eager fp32 on a second image
        assert 0.0 <= cell["mean_abs_diff_vs_fp32"] <= cell["max_abs_diff_vs_fp32"] < 0.25


def test_run_cuda_cell_graph_needs_cuda(random_m2unet):
    with pytest.raises(M2UNetError, match="CUDA graphs need a CUDA device"):
        run_cuda_cell(str(random_m2unet), "cuda-fp16-graph", 64, 48, warmup=1, repeats=1, device="cpu")
    with pytest.raises(M2UNetError, match="unknown GPU backend"):
        run_cuda_cell(str(random_m2unet), "openvino", 64, 48, warmup=1, repeats=1, device="cpu")


def test_backends_and_device_must_match():
    assert check_backends("openvino,torch", "cpu") == ["torch", "openvino"]
    assert check_backends("cuda-bf16-graph", "cuda") == ["cuda", "cuda-bf16-graph"]
    for args, message in ((["--device", "cpu", "--backends", "torch,cuda-fp16"], "need --device cuda"),
                          (["--backends", "cuda"], "need --device cuda"),
                          (["--device", "cuda", "--backends", "cuda,openvino"], "run on CPU, not with --device cuda"),
                          (["--backends", "tensorrt"], "unknown backend(s) tensorrt"),
                          (["--arch", "m2unet,resnet"], "--arch resnet: unknown model")):
        result = CliRunner().invoke(main, ["bench", "--sizes", "64x64", *args])
        assert result.exit_code == 1, result.output
        assert message in result.output and "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
def test_cuda_without_gpu_is_one_line_error():
    result = CliRunner().invoke(main, ["bench", "--device", "cuda", "--sizes", "64x64"])
    assert result.exit_code == 1 and "torch.cuda.is_available() is False" in result.output and len(result.output.strip().splitlines()) == 1


def test_arch_models_side_by_side(tmp_path, export_cache):
    out = tmp_path / "bench"
    result = CliRunner().invoke(main, ["bench", "--arch", "m2unet,erfnet", "--sizes", "64x64", "--backends", "torch", "--repeats", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "bench.json").read_text())
    assert [(c["model"], c["backend"]) for c in report["cells"]] == [("m2unet (untrained)", "torch"), ("erfnet (untrained)", "torch")]
    assert all(c["median_ms"] > 0 for c in report["cells"])
    assert [m["arch"] for m in report["models"]] == ["m2unet", "erfnet"] and all(m["untrained"] for m in report["models"])
    markdown = (out / "bench.md").read_text()
    assert "| model | backend |" in markdown and "| m2unet (untrained) | torch | 64×64 |" in markdown and "| erfnet (untrained) | torch | 64×64 |" in markdown
    assert "calibrated on DRIVE" in markdown and (out / "bench.png").stat().st_size > 1000
    assert not (out / "bench.partial.json").exists()  # kept cell by cell during the run, removed once the report is whole
    saved = sorted(p.name for p in (export_cache / "untrained").iterdir())
    assert saved == ["untrained-erfnet.safetensors", "untrained-m2unet.safetensors"]


def test_weights_file(tmp_path, export_cache):
    torch.manual_seed(0)
    weights = save_weights(create_model("erfnet"), tmp_path / "my-erfnet.safetensors", {"dataset": "drive"})
    out = tmp_path / "bench"
    result = CliRunner().invoke(main, ["bench", "--weights", str(weights), "--sizes", "64x48", "--backends", "torch", "--repeats", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "bench.json").read_text())
    assert report["models"][0]["model"] == "erfnet (my-erfnet)" and report["weights"] == "my-erfnet.safetensors"
    assert [c["model"] for c in report["cells"]] == ["erfnet (my-erfnet)"]
    markdown = (out / "bench.md").read_text()
    assert "| torch | 64×48 |" in markdown and "| model |" not in markdown  # one model: no model column
    assert "erfnet (my-erfnet) = my-erfnet.safetensors" in markdown


def test_a_bench_that_another_command_made_is_replaced_only_with_overwrite(tmp_path, monkeypatch, export_cache):
    import sys

    out = tmp_path / "bench"
    out.mkdir()
    earlier = json.dumps({"command": "m2unet bench --sizes 64x64 -o elsewhere", "cells": [{"median_ms": 1.0}]})
    (out / "bench.json").write_text(earlier)
    typed = ["bench", "--arch", "m2unet", "--sizes", "64x48", "--backends", "torch", "--repeats", "1", "-o", str(out)]

    def bench(*extra):
        monkeypatch.setattr(sys, "argv", ["m2unet", *typed, *extra])  # the command bench records is the one typed
        return CliRunner().invoke(main, [*typed, *extra])

    result = bench()
    assert result.exit_code == 1 and "Traceback" not in result.output and (out / "bench.json").read_text() == earlier
    assert f"{out / 'bench.json'}: made by another command (m2unet bench --sizes 64x64 -o elsewhere)" in result.output
    assert "--overwrite" in result.output and not (out / "bench.partial.json").exists()  # refused before measuring
    result = bench("--overwrite")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "bench.json").read_text())["command"] == " ".join(["m2unet", *typed])  # without --overwrite
    assert bench().exit_code == 0  # the same command measures again into its own folder


def test_cuda_markdown_columns():
    def cell(model, backend, ms, gpu=900.0, diff=None):
        return {"model": model, "backend": backend, "width": 544, "height": 544, "median_ms": ms, "min_ms": ms * 0.9, "max_ms": ms * 1.2,
                "images_per_s": 1000 / ms, "peak_gpu_mb": gpu, "peak_rss_mb": 1500.0, "max_abs_diff_vs_fp32": diff,
                "loadavg_before": [0.1, 0, 0], "loadavg_after": [0.2, 0, 0]}

    cells = [cell("m2unet", "cuda", 4.0), cell("m2unet", "cuda-fp16-graph", 1.0, diff=2e-3), cell("unet", "cuda", 30.0),
             cell("unet", "cuda-fp16-graph", 10.0, diff=1e-3), {"model": "unet", "backend": "cuda-bf16", "width": 544, "height": 544, "error": "boom"}]
    table = markdown_table(cells, "cuda")
    assert "| model | backend |" in table and "peak GPU MB" in table and "speed-up vs cuda eager fp32" in table
    assert "| m2unet | cuda-fp16-graph | 544×544 | 1.00 | 0.90–1.20 | 1000.0 | 4.0× | 900 | 1500 | 2.0e-03 |" in table
    assert "| unet | cuda-fp16-graph | 544×544 | 10.00 | 9.00–12.00 | 100.0 | 3.0× |" in table  # speed-up per model
    assert "| unet | cuda-bf16 | 544×544 | failed: boom |" in table
    columns = [line.replace("\\|", "").count("|") for line in table.splitlines()]  # \| is a pipe inside a header
    assert len(set(columns)) == 1


def test_bench_worker_helpers():
    assert CUDA_BACKENDS == ("cuda", "cuda-fp16", "cuda-bf16", "cuda-fp16-graph", "cuda-bf16-graph")  # the names in committed GPU tables
    summary = timing_summary([0.004, 0.001, 0.003, 0.002])
    assert summary == pytest.approx({"median_ms": 2.5, "min_ms": 1.0, "max_ms": 4.0, "images_per_s": 400.0})
    assert timing_summary([0.002, 0.010, 0.004])["median_ms"] == pytest.approx(4.0)
    assert padded_shape(48, 64) == (48, 64) and padded_shape(49, 65) == (64, 80) and padded_shape(2336, 3504) == (2336, 3504)
    a = np.array([[0.5, 0.25], [1.0, 0.0]], dtype=np.float32)
    b = np.array([[0.5, 0.5], [0.875, 0.0]], dtype=np.float32)
    largest, mean = abs_difference(a, b)
    assert largest == 0.25 and math.isclose(mean, (0.25 + 0.125) / 4)


def test_cuda_report_header_and_title():
    """What bench.md and bench.png say about a GPU run (the GPU path cannot run here; its report text can)."""
    cells = [{"model": "m2unet (drive)", "backend": "cuda", "width": 544, "height": 544, "median_ms": 2.0, "cudnn_tf32": True,
              "loadavg_before": [0.5, 0, 0], "loadavg_after": [0.7, 0, 0]}]
    report = {"command": "m2unet bench --device cuda", "device": "cuda", "baseline": "cuda", "hint": "LATENCY", "started_utc": "2026-01-01T00:00:00Z",
              "seconds": 12.5, "cells": cells, "models": [{"model": "m2unet (drive)", "arch": "m2unet", "weights": "/x/drive.safetensors", "untrained": False}],
              "machine": {"cpu": "Some CPU", "cpu_count": 16, "isa": ["avx2"], "versions": {"torch": "2.13.0"}, "gpu": "NVIDIA H200", "cuda": "12.8",
                          "cudnn": 91000}}
    header = report_header(report)
    assert "GPU: NVIDIA H200, CUDA 12.8, cuDNN 91000, cudnn.benchmark on, cuDNN TF32 convolutions on (PyTorch default)  \n" in header
    assert "Models: m2unet (drive) = drive.safetensors.\n\n" in header and "OpenVINO hint" not in header
    assert "one whole image on the GPU (no tiling)" in header and "untrained" not in header and "Speed-up: relative" not in header
    assert chart_title(report) == "M2U-Net latency per image (NVIDIA H200, Some CPU, 16 CPUs, 1-min load avg 0.5–0.5); command: m2unet bench --device cuda"
