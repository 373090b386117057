"""``m2unet serve``: the web page and HTTP API on uvicorn."""

from __future__ import annotations

import ipaddress

import click

from ..errors import M2UNetError, one_line_errors
from ..weights import PRETRAINED_NAMES


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (127.0.0.0/8, ::1, localhost); a name or 0.0.0.0 is not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None) -> None:
    if not is_loopback(host) and not token:
        raise M2UNetError(f"--host {host} is reachable from other machines: give a --token (or set M2UNET_TOKEN) "
                          "that every API call must send as 'Authorization: Bearer TOKEN', or bind 127.0.0.1")


def check_port(host: str, port: int) -> None:
    """One clear line when the address cannot be listened on (in use, not this machine's), before anything loads."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a port in TIME_WAIT is free
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as error:
            raise M2UNetError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; anything but loopback needs --token.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option("--weights", "weights", multiple=True, metavar="[NAME=]FILE",
              help="Also serve this weights file (e.g. from `m2unet calibrate`) as model NAME [default: the file's stem]; "
                   "repeatable. The first is the default model unless --model says otherwise.")
@click.option("--model", "model_name", default=None, help="Default model of a request (a request may name another): auto (the "
              f"universal model), {', '.join(PRETRAINED_NAMES)} or a --weights NAME [default: the first --weights, else auto].")
@click.option("--backend", "runtime", default=None, type=click.Choice(["torch", "onnxruntime", "openvino"]),
              help="Runtime [default: openvino if installed, else onnxruntime, else torch].")
@click.option("--precision", default="auto", show_default=True, type=click.Choice(["auto", "fp32", "bf16", "int8"]),
              help="As for `m2unet segment` (auto: bf16 with openvino on CPUs that have it, else fp32).")
@click.option("--token", envvar="M2UNET_TOKEN", default=None, help="Bearer token every API call must send [env: M2UNET_TOKEN].")
@click.option("--max-upload-mb", default=50.0, show_default=True, type=click.FloatRange(0.01), help="Largest request body (HTTP 413 above).")
@click.option("--max-megapixels", default=50.0, show_default=True, type=click.FloatRange(0.01),
              help="Largest image (width × height, from the header, before decoding: HTTP 413 above).")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="Worker threads that decode and segment.")
@click.option("--queue", default=16, show_default=True, type=click.IntRange(0, 10_000), help="Requests that may wait for a worker (HTTP 503 beyond).")
@click.option("--cors", "cors", multiple=True, metavar="ORIGIN", help="Allow browser calls from this origin (repeatable); off by default.")
@one_line_errors
def serve(host, port, weights, model_name, runtime, precision, token, max_upload_mb, max_megapixels, workers, queue, cors):
    """A web page and an HTTP API for vessel segmentation: the page at /, the API under /v1, its docs at /docs.

    The page: drop photographs; for each, the photograph, the overlay, the probability and the binary map side
    by side, a threshold slider that redraws the binary map in the browser, the model and timings, downloads.
    It needs nothing from the internet. The API: GET /healthz, GET /v1/models, POST /v1/segment (multipart field
    'image'; optional model, threshold, tta; ?format=png for the binary map as PNG), POST /v1/measure.
    Binds 127.0.0.1 unless told otherwise; another address needs --token. Uploads are never written to disk
    beyond the request. SIGTERM or Ctrl+C stops it cleanly (running requests finish first).

    \b
    Examples:
      m2unet serve                                   # then open http://127.0.0.1:8000/
      curl -F image=@examples/chase_db1_Image_11L.jpg http://127.0.0.1:8000/v1/segment
      curl -F image=@photo.jpg -F threshold=0.5 'http://127.0.0.1:8000/v1/segment?format=png' -o vessels.png
      m2unet calibrate my_camera/ -o my_camera.safetensors && m2unet serve --weights my_camera.safetensors
      M2UNET_TOKEN=s3cret m2unet serve --host 0.0.0.0 --port 8080 --workers 4
      curl -H 'Authorization: Bearer s3cret' http://HOST:8080/v1/models
    """
    check_exposure(host, token)
    check_port(host, port)
    from .work import served_weights

    served = served_weights(weights)
    model_name = model_name or next(iter(served), "auto")
    if model_name not in ("auto", *PRETRAINED_NAMES, *served):
        raise M2UNetError(f"--model {model_name}: choose auto, {', '.join(PRETRAINED_NAMES)} or a --weights name")
    try:
        import uvicorn

        from .app import Settings, create_app
    except ModuleNotFoundError as error:
        raise M2UNetError(f"m2unet serve needs {error.name}: pip install 'm2unet[serve]'") from None
    from ..inference.backends import backend_name
    from ..inference.pipeline import default_runtime

    first = next(iter(served.values()), None)  # an OpenVINO IR file is run by openvino
    backend = backend_name(runtime or default_runtime("cpu", first), precision, "cpu", first)
    settings = Settings(model=model_name, weights=served, backend=backend, token=token or None, max_upload_bytes=int(max_upload_mb * 2**20),
                        max_pixels=int(max_megapixels * 1e6), workers=workers, queue=queue, cors=tuple(cors))
    app = create_app(settings)
    for name in served:  # a file the backend cannot run is one error now, and the first request is not kept waiting
        app.state.models.get(name)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"m2unet serve: http://{shown}:{port}/ (page), /docs (API); model {model_name}, backend {backend}, "
               f"{workers} workers{', token required' if token else ''}. Ctrl+C or SIGTERM stops it.", err=True)
    stop_quietly_on_sigterm()
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False, timeout_graceful_shutdown=30)
    click.echo("m2unet serve: stopped", err=True)


def stop_quietly_on_sigterm() -> None:
    """uvicorn shuts down gracefully on SIGTERM, then raises the signal again for the handler it found: with this
    one installed that is a no-op, so the command returns and exits 0 (a service manager's clean stop)."""
    import signal

    signal.signal(signal.SIGTERM, lambda number, frame: None)
