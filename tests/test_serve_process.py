"""``m2unet serve`` as a real process: refusal without a token, a slow client, concurrent requests, SIGTERM."""

from __future__ import annotations

import io
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from PIL import Image

from m2unet.cli import main
from serve_server import free_port, start_server

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "chase_db1_Image_11L.jpg"


def test_non_loopback_host_without_token_is_refused_in_one_line():
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: --host 0.0.0.0 is reachable from other machines: give a --token (or set M2UNET_TOKEN) that every API call "
        "must send as 'Authorization: Bearer TOKEN', or bind 127.0.0.1"]
    assert "Examples:" in CliRunner().invoke(main, ["serve", "--help"]).output


def test_port_in_use_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--port", str(port)])
    assert result.exit_code == 1 and result.output == f"error: cannot listen on 127.0.0.1:{port}: Address already in use\n"


@pytest.fixture(scope="module")
def small_photo() -> bytes:
    buffer = io.BytesIO()
    Image.open(SAMPLE).resize((500, 480), Image.BILINEAR).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def test_slow_client_concurrency_and_sigterm(export_cache, small_photo):
    port = free_port()
    server = start_server(port, "--workers", "2")
    base = f"http://127.0.0.1:{port}"
    try:
        # a client that announces 1 MB and sends 100 bytes holds one connection, and nothing else
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"POST /v1/segment HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                     b"Content-Length: 1000000\r\n\r\n" + b"x" * 100)
        assert httpx.get(f"{base}/healthz", timeout=10).json()["status"] == "ok"  # a blocked server would never answer

        def segment(_):
            return httpx.post(f"{base}/v1/segment", files={"image": ("p.jpg", small_photo)}, timeout=300)

        with ThreadPoolExecutor(6) as clients:
            pending = [clients.submit(segment, index) for index in range(6)]
            busy = []  # while the workers segment, the event loop still answers
            while not all(job.done() for job in pending) and not busy:
                health = httpx.get(f"{base}/healthz", timeout=10).json()
                if health["running_or_waiting"] > 0:
                    busy.append(health)
                time.sleep(0.02)
            answers = [job.result() for job in pending]
        assert busy and busy[0]["status"] == "ok"
        assert [a.status_code for a in answers] == [200] * 6
        assert len({a.json()["vessels_png"] for a in answers}) == 1  # one shared model, same answer each time
        slow.close()
        server.send_signal(signal.SIGTERM)
        started = time.perf_counter()
        assert server.wait(timeout=20) == 0
        assert time.perf_counter() - started < 10
        assert "Traceback" not in server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
