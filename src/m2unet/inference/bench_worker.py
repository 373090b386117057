"""One cell of ``m2unet bench`` in its own process: ``python -m m2unet.inference.bench_worker JOB_JSON``.

Kept apart from the CLI so the measured process imports only the package, the runtime and numpy.
:func:`run_cell` times a CPU backend (the tiled inference path of ``m2unet segment``); :func:`run_cuda_cell`
times a GPU backend (the whole image in one call).
"""

from __future__ import annotations

import json
import os
import sys
import time

# GPU backends of ``m2unet bench --device cuda``: PyTorch eager fp32 (the GPU baseline), fp16 / bf16 autocast
# with channels_last, and the same captured once per input shape in a CUDA graph.
CUDA_BACKENDS = ("cuda", "cuda-fp16", "cuda-bf16", "cuda-fp16-graph", "cuda-bf16-graph")
# Runs on a side stream before a CUDA graph is captured (cudnn autotuning and lazy initialisation happen here,
# never inside the capture); the PyTorch CUDA-graph docs warm up the same way.
GRAPH_CAPTURE_WARMUP = 3


def median_of(times: list[float]) -> float:
    ordered = sorted(times)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else 0.5 * (ordered[middle - 1] + ordered[middle])


def run_cell(weights: str, backend: str, width: int, height: int, warmup: int, repeats: int, hint: str, threads: int | None) -> dict:
    """Time one backend at one size in this process (the worker side of a cell)."""
    import numpy as np

    from ..weights import calibration_for
    from .backends import create_backend
    from .tiling import predict_tiled

    load_before = os.getloadavg()
    runner = create_backend(backend, weights, calibration=calibration_for(weights), hint=hint, threads=threads)
    loaded_rss = proc_status_mb("VmRSS")  # interpreter + runtime + model (+ torch for the torch backends)
    image = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
    for _ in range(warmup):
        predict_tiled(runner, image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict_tiled(runner, image)
        times.append(time.perf_counter() - start)
    times.sort()
    median = median_of(times)
    return {
        "backend": backend, "width": width, "height": height, "repeats": repeats, "warmup": warmup,
        "median_ms": median * 1000, "min_ms": times[0] * 1000, "max_ms": times[-1] * 1000,
        "images_per_s": 1.0 / median, "rss_after_load_mb": loaded_rss, "peak_rss_mb": peak_rss_mb(),
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
    }


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

    from ..errors import M2UNetError
    from ..weights import load_weights
    from .predict import MULTIPLE, autocast_context, predict_logits

    if backend not in CUDA_BACKENDS:
        raise M2UNetError(f"unknown GPU backend {backend!r}; choose one of {', '.join(CUDA_BACKENDS)}")
    device = torch.device(device)
    on_cuda = device.type == "cuda"
    use_graph = backend.endswith("-graph")
    if use_graph and not on_cuda:
        raise M2UNetError(f"{backend}: CUDA graphs need a CUDA device (got device {device})")
    if on_cuda:
        from .backends import require_cuda

        require_cuda()
    dtype = torch.float16 if "fp16" in backend else torch.bfloat16 if "bf16" in backend else None
    if on_cuda:
        torch.backends.cudnn.benchmark = True

    def synchronize() -> None:
        if on_cuda:
            torch.cuda.synchronize(device)

    load_before = os.getloadavg()
    model, _ = load_weights(weights)
    model = model.float().eval().to(device)
    if dtype is not None:
        model = model.to(memory_format=torch.channels_last)
    synchronize()
    loaded_rss = proc_status_mb("VmRSS")

    def eager(image: np.ndarray, autocast: torch.dtype | None = dtype) -> np.ndarray:
        x = torch.from_numpy(image).to(device)  # H×W×3 float32, one contiguous host → device copy; NCHW on the device
        logits = predict_logits(model, x.permute(2, 0, 1).unsqueeze(0), autocast=autocast, channels_last=dtype is not None)
        return torch.sigmoid(logits[0, 0]).cpu().numpy()

    graphs: dict[tuple[int, int], tuple] = {}  # (h, w) → (graph, static input, static output)

    def capture(h: int, w: int) -> tuple:
        # Static input: zeros, so the padding stays zero; only [:h, :w] is ever written. channels_last
        # N×3×H×W has the memory order of an H×W×3 image.
        static_input = torch.zeros((1, 3, h + (-h) % MULTIPLE, w + (-w) % MULTIPLE), device=device)
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

    def graphed(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        if (h, w) not in graphs:
            graphs[(h, w)] = capture(h, w)
        graph, static_input, static_output = graphs[(h, w)]
        with torch.no_grad():
            x = torch.from_numpy(image).to(device)
            static_input[0, :, :h, :w].copy_(x.permute(2, 0, 1))
            graph.replay()
            return static_output[0, 0, :h, :w].cpu().numpy()  # a copy: the next replay overwrites the buffer

    run = graphed if use_graph else eager
    rng = np.random.default_rng(0)
    image = rng.random((height, width, 3), dtype=np.float32)
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
    peak_gpu = torch.cuda.max_memory_allocated(device) / 2**20 if on_cuda else None
    peak_gpu_reserved = torch.cuda.max_memory_reserved(device) / 2**20 if on_cuda else None
    loadavg_after = os.getloadavg()

    # Output check (not timed): another image through the same path, against eager fp32 of the same model.
    check_image = np.random.default_rng(1).random((height, width, 3), dtype=np.float32)
    checked = run(check_image)
    max_diff = mean_diff = None
    if dtype is not None or use_graph:
        reference = eager(check_image, autocast=None)  # fp32, same model and layout
        difference = np.abs(checked.astype(np.float64) - reference)
        max_diff, mean_diff = float(difference.max()), float(difference.mean())
    tf32 = None
    if on_cuda:
        try:
            tf32 = bool(torch.backends.cudnn.allow_tf32)
        except Exception:
            tf32 = None
    median = median_of(times)
    return {
        "backend": backend, "width": width, "height": height, "repeats": repeats, "warmup": warmup, "device": str(device),
        "median_ms": median * 1000, "min_ms": min(times) * 1000, "max_ms": max(times) * 1000, "images_per_s": 1.0 / median,
        "first_call_ms": first_call * 1000, "rss_after_load_mb": loaded_rss, "peak_rss_mb": peak_rss_mb(),
        "peak_gpu_mb": peak_gpu, "peak_gpu_reserved_mb": peak_gpu_reserved,
        "gpu_name": torch.cuda.get_device_name(device) if on_cuda else None,
        "torch": torch.__version__, "cuda_version": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if on_cuda else None,
        "cudnn_benchmark": on_cuda, "cudnn_tf32": tf32,
        "output_shape": list(probability.shape), "output_min": float(probability.min()), "output_max": float(probability.max()),
        "output_finite": bool(np.isfinite(probability).all()),
        "max_abs_diff_vs_fp32": max_diff, "mean_abs_diff_vs_fp32": mean_diff,
        "loadavg_before": load_before, "loadavg_after": loadavg_after,
    }


def proc_status_mb(field: str) -> float:
    """A memory field of /proc/self/status in MB (Linux): VmRSS (now) or VmHWM (peak since exec)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def peak_rss_mb() -> float:
    """Peak RSS of this process. VmHWM, not ru_maxrss: Linux carries the parent's high-water mark in
    ru_maxrss across fork+exec, so a worker started by a big parent would report the parent's peak."""
    peak = proc_status_mb("VmHWM")
    if peak == peak:  # not NaN
        return peak
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    job = json.loads(sys.argv[1])
    if job["backend"] in CUDA_BACKENDS:
        result = run_cuda_cell(job["weights"], job["backend"], job["width"], job["height"], job["warmup"], job["repeats"], job.get("device", "cuda"))
    else:
        result = run_cell(job["weights"], job["backend"], job["width"], job["height"], job["warmup"], job["repeats"], job["hint"], job["threads"])
    print(json.dumps(result))
