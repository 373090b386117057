"""One cell of ``m2unet bench`` in its own process: ``python -m m2unet.inference.bench_worker JOB_JSON``.

Kept apart from the CLI so the measured process imports only the package, the runtime and numpy.
:func:`run_cell` times a CPU backend (the tiled inference path of ``m2unet segment``); :func:`run_cuda_cell`
times a GPU backend (the whole image in one call).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

from ..system import peak_rss_mb, rss_mb
from .backend_spec import GPU_BACKENDS, GRAPH_BACKENDS, BackendSpec
from .tiling import MULTIPLE

# GPU backends of ``m2unet bench --device cuda``: PyTorch eager fp32 (the GPU baseline), fp16 / bf16 autocast
# with channels_last, and the same captured once per input shape in a CUDA graph.
CUDA_BACKENDS = GPU_BACKENDS + GRAPH_BACKENDS
# Runs on a side stream before a CUDA graph is captured (cudnn autotuning and lazy initialisation happen here,
# never inside the capture); the PyTorch CUDA-graph docs warm up the same way.
GRAPH_CAPTURE_WARMUP = 3


def timing_summary(times: list[float]) -> dict:
    """Median, fastest and slowest run (ms) and images/s of timed runs given in seconds."""
    median = statistics.median(times)
    return {"median_ms": median * 1000, "min_ms": min(times) * 1000, "max_ms": max(times) * 1000, "images_per_s": 1.0 / median}


def padded_shape(height: int, width: int, multiple: int = MULTIPLE) -> tuple[int, int]:
    """``height`` × ``width`` zero-padded up to multiples of ``multiple`` (what the model sees)."""
    return height + (-height) % multiple, width + (-width) % multiple


def abs_difference(result, reference) -> tuple[float, float]:
    """(max, mean) absolute difference of two probability maps, in float64."""
    import numpy as np

    difference = np.abs(result.astype(np.float64) - reference)
    return float(difference.max()), float(difference.mean())


def run_cell(weights: str, backend: str, width: int, height: int, warmup: int, repeats: int, hint: str, threads: int | None) -> dict:
    """Time one backend at one size in this process (the worker side of a cell)."""
    import numpy as np

    from ..weights import calibration_for
    from .backends import create_backend
    from .tiling import predict_tiled

    load_before = os.getloadavg()
    runner = create_backend(backend, weights, calibration=calibration_for(weights), hint=hint, threads=threads)
    loaded_rss = rss_mb()  # interpreter + runtime + model (+ torch for the torch backends)
    image = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
    for _ in range(warmup):
        predict_tiled(runner, image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict_tiled(runner, image)
        times.append(time.perf_counter() - start)
    return {
        "backend": backend, "width": width, "height": height, "repeats": repeats, "warmup": warmup, **timing_summary(times),
        "rss_after_load_mb": loaded_rss, "peak_rss_mb": peak_rss_mb(),
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
    }


def _cuda_cell_spec(backend: str, device: str):
    """(spec, torch device, autocast dtype) of a GPU cell; one-line errors for what cannot run."""
    import torch

    from ..errors import M2UNetError

    if backend not in CUDA_BACKENDS:
        raise M2UNetError(f"unknown GPU backend {backend!r}; choose one of {', '.join(CUDA_BACKENDS)}")
    spec = BackendSpec.parse(backend)
    device = torch.device(device)
    on_cuda = device.type == "cuda"
    if spec.graph and not on_cuda:
        raise M2UNetError(f"{backend}: CUDA graphs need a CUDA device (got device {device})")
    if on_cuda:
        from .backends import require_cuda

        require_cuda()
    dtype = spec.autocast()
    if on_cuda:
        torch.backends.cudnn.benchmark = True
    return spec, device, dtype


class CudaCellModel:
    """The model of a GPU cell on ``device`` (channels_last under autocast ``dtype``) and its two ways to run an
    H×W×3 float32 image to an H×W probability: :meth:`eager`, or :meth:`graphed` (one CUDA graph per shape)."""

    def __init__(self, weights: str, device, dtype):
        import torch

        from ..weights import load_weights

        self.torch, self.device, self.dtype = torch, device, dtype
        self.on_cuda = device.type == "cuda"
        model, _ = load_weights(weights)
        model = model.float().eval().to(device)
        if dtype is not None:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.graphs: dict[tuple[int, int], tuple] = {}  # (h, w) → (graph, static input, static output)

    def synchronize(self) -> None:
        if self.on_cuda:
            self.torch.cuda.synchronize(self.device)

    def eager(self, image):
        """PyTorch eager under the cell's autocast."""
        return self._eager(image, self.dtype)

    def reference(self, image):
        """PyTorch eager fp32, same model and layout: what the output check compares against."""
        return self._eager(image, None)

    def _eager(self, image, autocast):
        from .predict import predict_logits

        torch = self.torch
        x = torch.from_numpy(image).to(self.device)  # H×W×3 float32, one contiguous host → device copy; NCHW on the device
        logits = predict_logits(self.model, x.permute(2, 0, 1).unsqueeze(0), autocast=autocast, channels_last=self.dtype is not None)
        return torch.sigmoid(logits[0, 0]).cpu().numpy()

    def capture(self, h: int, w: int) -> tuple:
        """(graph, static input, static output) for an h×w image, after warm-up runs on a side stream."""
        from .predict import autocast_context

        torch, device, dtype, model = self.torch, self.device, self.dtype, self.model
        # Static input: zeros, so the padding stays zero; only [:h, :w] is ever written. channels_last
        # N×3×H×W has the memory order of an H×W×3 image.
        static_input = torch.zeros((1, 3, *padded_shape(h, w)), device=device)
        static_input = static_input.contiguous(memory_format=torch.channels_last)
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(GRAPH_CAPTURE_WARMUP):
                with autocast_context(device, dtype, cache_enabled=False):
                    logits = model(static_input)
                torch.sigmoid(logits.float())
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph):
            with autocast_context(device, dtype, cache_enabled=False):
                logits = model(static_input)
            static_output = torch.sigmoid(logits.float())
        return graph, static_input, static_output

    def graphed(self, image):
        """One replay of the graph of this image's shape (captured on the first call of the shape)."""
        h, w = image.shape[:2]
        if (h, w) not in self.graphs:
            self.graphs[(h, w)] = self.capture(h, w)
        graph, static_input, static_output = self.graphs[(h, w)]
        with self.torch.no_grad():
            x = self.torch.from_numpy(image).to(self.device)
            static_input[0, :, :h, :w].copy_(x.permute(2, 0, 1))
            graph.replay()
            return static_output[0, 0, :h, :w].cpu().numpy()  # a copy: the next replay overwrites the buffer


def _time_gpu_runs(run, image, warmup: int, repeats: int, synchronize) -> tuple[float, list[float], object]:
    """(first call s, timed runs s, last probability): the first call (cudnn autotuning, graph capture) timed on its
    own, ``warmup`` untimed runs, then ``repeats`` timed runs, each between two ``synchronize()``."""
    synchronize()
    start = time.perf_counter()
    run(image)  # first call: cudnn autotuning, graph capture
    synchronize()
    first_call = time.perf_counter() - start
    for _ in range(warmup):
        run(image)
    times = []
    probability = None
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        probability = run(image)
        synchronize()
        times.append(time.perf_counter() - start)
    return first_call, times, probability


def _cudnn_tf32(torch, on_cuda: bool) -> bool | None:
    if not on_cuda:
        return None
    try:
        return bool(torch.backends.cudnn.allow_tf32)
    except Exception:
        return None


def run_cuda_cell(weights: str, backend: str, width: int, height: int, warmup: int, repeats: int, device: str = "cuda") -> dict:
    """Time one GPU backend (see ``CUDA_BACKENDS``) at one size in this process.

    No tiling: the whole image, zero-padded to a multiple of 16, goes through the model in one call. Timed per
    run: host float32 H×W×3 image → device, HWC → NCHW and padding on the device, the model (eager, or one
    replay of the CUDA graph), sigmoid, probability → host; ``torch.cuda.synchronize()`` before each clock
    reading. ``warmup`` untimed runs come first (cudnn autotuning, ``cudnn.benchmark = True``, runs there);
    graph variants also run :data:`GRAPH_CAPTURE_WARMUP` times on a side stream before capturing, once per
    input shape, on the first call. After timing, a second random image checks the output against eager fp32
    (``max_abs_diff_vs_fp32``), so a stale graph buffer or an fp16 overflow shows in the report.

    ``device`` may be ``"cpu"`` for the non-graph variants (``cuda`` = fp32, ``cuda-bf16``, ``cuda-fp16``
    under CPU autocast), so the timing code can be tested without a GPU; graph variants need CUDA.
    """
    import numpy as np
    import torch

    spec, device, dtype = _cuda_cell_spec(backend, device)
    on_cuda = device.type == "cuda"
    load_before = os.getloadavg()
    cell_model = CudaCellModel(weights, device, dtype)
    cell_model.synchronize()
    loaded_rss = rss_mb()
    run = cell_model.graphed if spec.graph else cell_model.eager
    image = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
    first_call, times, probability = _time_gpu_runs(run, image, warmup, repeats, cell_model.synchronize)
    peak_gpu = torch.cuda.max_memory_allocated(device) / 2**20 if on_cuda else None
    peak_gpu_reserved = torch.cuda.max_memory_reserved(device) / 2**20 if on_cuda else None
    loadavg_after = os.getloadavg()

    # Output check (not timed): another image through the same path, against eager fp32 of the same model.
    check_image = np.random.default_rng(1).random((height, width, 3), dtype=np.float32)
    checked = run(check_image)
    max_diff = mean_diff = None
    if dtype is not None or spec.graph:
        max_diff, mean_diff = abs_difference(checked, cell_model.reference(check_image))
    return {
        "backend": backend, "width": width, "height": height, "repeats": repeats, "warmup": warmup, "device": str(device),
        **timing_summary(times), "first_call_ms": first_call * 1000, "rss_after_load_mb": loaded_rss, "peak_rss_mb": peak_rss_mb(),
        "peak_gpu_mb": peak_gpu, "peak_gpu_reserved_mb": peak_gpu_reserved,
        "gpu_name": torch.cuda.get_device_name(device) if on_cuda else None,
        "torch": torch.__version__, "cuda_version": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if on_cuda else None,
        "cudnn_benchmark": on_cuda, "cudnn_tf32": _cudnn_tf32(torch, on_cuda),
        "output_shape": list(probability.shape), "output_min": float(probability.min()), "output_max": float(probability.max()),
        "output_finite": bool(np.isfinite(probability).all()),
        "max_abs_diff_vs_fp32": max_diff, "mean_abs_diff_vs_fp32": mean_diff,
        "loadavg_before": load_before, "loadavg_after": loadavg_after,
    }


if __name__ == "__main__":
    job = json.loads(sys.argv[1])
    if job["backend"] in CUDA_BACKENDS:
        result = run_cuda_cell(job["weights"], job["backend"], job["width"], job["height"], job["warmup"], job["repeats"], job.get("device", "cuda"))
    else:
        result = run_cell(job["weights"], job["backend"], job["width"], job["height"], job["warmup"], job["repeats"], job["hint"], job["threads"])
    print(json.dumps(result))
