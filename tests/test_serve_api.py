"""``m2unet serve``'s HTTP API against the app (FastAPI TestClient): a good photo, every bad input, token, limits."""

from __future__ import annotations

import asyncio
import base64
import io
import sys
import threading
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's notice about httpx vs httpx2 in its TestClient
    from fastapi.testclient import TestClient

from m2unet.serve.app import Pool, Settings, create_app
from m2unet.serve.cli import check_exposure, is_loopback
from m2unet.serve.work import RequestError, display_name
from m2unet.weights import pretrained_path, read_metadata

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "chase_db1_Image_11L.jpg"  # 999×960, FOV ≈ 920 px wide: auto runs the universal model


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_png(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


@pytest.fixture(scope="module")
def small_photo() -> bytes:
    """The sample at half size (500×480, FOV ≈ 460 px: the drive model): quick to segment."""
    buffer = io.BytesIO()
    Image.open(SAMPLE).resize((500, 480), Image.BILINEAR).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def client_for(**settings) -> TestClient:
    return TestClient(create_app(Settings(backend="onnxruntime", **settings)))


@pytest.fixture(scope="module")
def client(export_cache):
    with client_for() as client:
        yield client


def post(client, data: bytes, name: str = "photo.jpg", fields: dict | None = None, path: str = "/v1/segment", headers=None):
    return client.post(path, files={"image": (name, data, "application/octet-stream")}, data=fields or {}, headers=headers)


def test_good_photo(client):
    answer = post(client, SAMPLE.read_bytes(), "chase_db1_Image_11L.jpg")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["image"], body["width"], body["height"], body["model"], body["backend"]) == ("chase_db1_Image_11L.jpg", 999, 960, "universal", "onnxruntime")
    assert body["threshold"] == pytest.approx(read_metadata(pretrained_path("universal"))["threshold"])  # its stored a-priori threshold
    assert 880 < body["fov_width"] < 960 and body["tta"] is True  # auto: flips of the kept view (m2unet.weights.auto_run)
    from m2unet.data.scale import model_scale

    search = model_scale(read_metadata(pretrained_path("universal")), search=True)  # auto: the diameter searched
    assert body["search_diameter"] is True and body["run_fov_diameter"] in search.candidates_for(body["fov_width"])
    assert body["contrast_gain"] == 1.0  # a CHASE_DB1 photograph is above the universal model's contrast floor
    assert body["review"] is None  # a good photograph's map: nothing to look at (m2unet.inference.review)
    assert set(body["timings_ms"]) == {"decode", "fov", "model", "segment", "encode", "total"}
    probability, vessels, fov = (decode_png(body[key]) for key in ("probability_png", "vessels_png", "fov_png"))
    assert probability.shape == vessels.shape == fov.shape == (960, 999)
    assert probability[~fov].max() == 0 and probability.max() > 240  # 0 outside the FOV, confident vessels inside
    # the binary map is the probability at the stored threshold (the 8-bit map rounds: allow its boundary pixels)
    disagree = vessels != (probability / 255.0 >= body["threshold"])
    assert disagree.mean() < 0.002
    assert 0.05 < vessels[fov].mean() < 0.20 and body["vessel_fraction"] == pytest.approx(vessels[fov].mean(), abs=1e-4)
    assert "overlay_png" not in body


def test_threshold_model_overlay_and_png_answer(client, small_photo):
    low = post(client, small_photo, fields={"threshold": "0.2", "model": "drive", "overlay": "true"}).json()
    high = post(client, small_photo, fields={"threshold": "0.8", "model": "drive"}).json()
    assert low["model"] == high["model"] == "drive" and low["threshold"] == 0.2
    assert low["vessel_fraction"] > high["vessel_fraction"] > 0.01
    overlay = decode_png(low["overlay_png"])
    assert overlay.shape == (480, 500, 3) and (overlay[..., 1] > overlay[..., 0] + 100).mean() > 0.02  # green vessels
    answer = client.post("/v1/segment?format=png", files={"image": ("p.jpg", small_photo)}, data={"threshold": "0.8", "model": "drive"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert answer.headers["x-m2unet-model"] == "drive" and float(answer.headers["x-m2unet-threshold"]) == 0.8
    binary = np.asarray(Image.open(io.BytesIO(answer.content)))
    assert binary.dtype == bool and binary.mean() == pytest.approx(decode_png(high["vessels_png"]).mean(), abs=1e-6)


def test_a_map_to_look_at_says_why_and_the_threshold_asked_does_not_change_it(client, small_photo):
    from PIL import ImageFilter

    buffer = io.BytesIO()
    Image.open(io.BytesIO(small_photo)).filter(ImageFilter.GaussianBlur(6)).save(buffer, format="PNG")  # far out of focus
    for threshold in ("0.05", None):  # the review is at the model's stored threshold, whatever the map is cut at
        body = post(client, buffer.getvalue(), "blurred.png", fields={"model": "drive", **({"threshold": threshold} if threshold else {})}).json()
        assert body["review"].startswith("few vessels"), body["review"]
    assert post(client, small_photo, fields={"model": "drive"}).json()["review"] is None


def test_tta_runs_through_the_same_model(client, small_photo):
    plain = decode_png(post(client, small_photo, fields={"model": "drive"}).json()["probability_png"]).astype(int)
    flipped = post(client, small_photo, fields={"model": "drive", "tta": "true"}).json()
    assert flipped["tta"] is True
    tta = decode_png(flipped["probability_png"]).astype(int)
    assert 0 < np.abs(tta - plain).mean() < 10  # close to the plain map, not equal to it
    assert "drive" in client.get("/healthz").json()["loaded"]
    # the same map as the Python API's TTA: the flips are of the view the model runs, the FOV measured once
    from m2unet import segment
    photo = np.asarray(Image.open(io.BytesIO(small_photo)).convert("RGB"))
    expected = np.round(segment(photo, "drive", backend="onnxruntime", tta=True) * 255).astype(int)
    assert np.abs(tta - expected).max() <= 1


def test_the_diameter_search_is_a_per_request_setting_of_the_same_model(client, small_photo):
    plain = post(client, small_photo, fields={"model": "universal"}).json()
    searched = post(client, small_photo, fields={"model": "universal", "search_diameter": "true"}).json()
    assert plain["search_diameter"] is False and plain["run_fov_diameter"] == 1024  # a 460-px FOV clamped into 1024–1792
    assert post(client, small_photo, fields={"search_diameter": "false"}).json()["run_fov_diameter"] == 1024  # auto, search off
    assert searched["search_diameter"] is True and searched["run_fov_diameter"] in (1024, 1280, 1536, 1792)
    from m2unet import segment
    photo = np.asarray(Image.open(io.BytesIO(small_photo)).convert("RGB"))
    expected = np.round(segment(photo, "universal", backend="onnxruntime", search_diameter=True) * 255).astype(int)
    assert np.abs(decode_png(searched["probability_png"]).astype(int) - expected).max() <= 1  # as the Python API searches

def sample_crop(mode: str) -> Image.Image:
    return Image.open(SAMPLE).crop((200, 200, 360, 344)).convert(mode)  # 160×144 inside the FOV


@pytest.mark.parametrize("name,data", [
    ("rgb16.tif", "tiff16"), ("gray.png", "L"), ("rgba.png", "RGBA"), ("photo.webp", "WEBP"), ("photo.bmp", "BMP"),
])
def test_other_formats(client, name, data):
    if data == "tiff16":
        import tifffile

        buffer = io.BytesIO()
        tifffile.imwrite(buffer, np.asarray(sample_crop("RGB"), np.uint16) * 257, photometric="rgb")  # PIL cannot read these
    else:
        buffer = io.BytesIO()
        image = sample_crop(data if data in ("L", "RGBA") else "RGB")
        image.save(buffer, format=data if data in ("WEBP", "BMP") else "PNG")
    answer = post(client, buffer.getvalue(), name, {"model": "drive"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["width"], body["height"], body["image"]) == (160, 144, name)
    assert decode_png(body["probability_png"]).shape == (144, 160)


def truncated_jpeg() -> bytes:
    data = SAMPLE.read_bytes()
    return data[: len(data) // 3]


@pytest.mark.parametrize("name,data,fields,reason", [
    ("empty.jpg", b"", {}, "empty.jpg: file is empty (0 bytes)"),
    ("notes.jpg", b"these are not pixels\n" * 20, {}, "notes.jpg: not an image file (unrecognised format)"),
    ("cut.jpg", None, {}, "cut.jpg: image file is truncated"),
    ("tiny.png", png(np.zeros((8, 8, 3), np.uint8)), {}, "tiny.png: image too small (8×8; need at least 16×16)"),
    ("../../etc/evil.jpg", b"GIF89a" + b"\0" * 10, {}, "evil.jpg: "),
    ("p.jpg", b"x", {"model": "unet"}, "unknown model 'unet'; choose one of auto, drive, chase_db1, hrf, universal"),
    ("p.jpg", b"x", {"threshold": "high"}, "threshold: Input should be a valid number"),
    ("p.jpg", b"x", {"threshold": "1.5"}, "threshold: Input should be less than or equal to 1"),
    ("p.jpg", b"x", {"tta": "maybe"}, "tta: Input should be a valid boolean"),
])
def test_bad_input_is_400_with_one_line(client, name, data, fields, reason):
    answer = post(client, truncated_jpeg() if data is None else data, name, fields)
    assert answer.status_code == 400
    message = answer.json()["error"]
    assert message.startswith(reason) and "\n" not in message and "Traceback" not in message
    assert "/" not in message.split(":")[0]  # the client's name is shown without its folders, and is never a path here


def test_bad_requests_other_than_the_file(client):
    assert client.post("/v1/segment").json() == {"error": "no image: send the photograph as the multipart field 'image'"}
    answer = client.post("/v1/segment?format=gif", files={"image": ("p.jpg", b"x")})
    assert answer.status_code == 400 and answer.json()["error"].startswith("format: String should match pattern")
    assert client.get("/v1/nothing").status_code == 404 and client.get("/v1/nothing").json() == {"error": "Not Found"}
    assert client.get("/v1/segment").status_code == 405


def test_an_unexpected_failure_is_500_with_one_line(small_photo, monkeypatch, export_cache):
    def broken(*args, **kwargs):
        raise RuntimeError("out of infer requests\nsecond line")

    monkeypatch.setattr("m2unet.serve.app.segment_upload", broken)
    with TestClient(create_app(Settings(backend="onnxruntime")), raise_server_exceptions=False) as client:
        answer = post(client, small_photo)
    assert answer.status_code == 500
    assert answer.json() == {"error": "internal error (RuntimeError: out of infer requests); the server log has the details"}


def test_no_client_name_becomes_a_path(client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("../escape.png", "/tmp/absolute.png", "..\\windows.png", "sub/dir/x.png"):
        post(client, png(np.zeros((8, 8), np.uint8)), name)
    assert list(tmp_path.iterdir()) == [] and not (tmp_path.parent / "escape.png").exists()
    assert display_name("../../etc/passwd") == "passwd" and display_name("a\\b\\c.jpg") == "c.jpg"
    assert display_name("") == "upload" and display_name("bad\x00\nname.png") == "badname.png"


def test_upload_limit_is_413_declared_or_streamed(export_cache):
    with client_for(max_upload_bytes=100_000) as client:
        answer = post(client, b"\xff" * 150_000)  # Content-Length declared: refused before the body is read
        assert answer.status_code == 413 and answer.json() == {"error": "upload is over the server's limit of 0.0953674 MB"}

        def chunks():  # no Content-Length (chunked): counted as it arrives
            yield b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\n"
            for _ in range(30):
                yield b"\xff" * 10_000

        answer = client.post("/v1/segment", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert answer.status_code == 413 and answer.json()["error"].startswith("upload is over the server's limit")


def test_pixel_limit_is_413_before_decoding(export_cache):
    bomb = png(np.zeros((4000, 5000), np.uint8))  # 20 Mpx in a ~20 kB file
    assert len(bomb) < 100_000
    with client_for(max_pixels=10_000_000) as client:
        answer = post(client, bomb, "bomb.png")
        assert answer.status_code == 413
        assert answer.json() == {"error": "bomb.png: 5000×4000 px is over the server's limit of 10 megapixels"}


def test_token(export_cache, small_photo):
    with client_for(token="s3cret") as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}, {"Authorization": "s3cret"}):
            for method, path in (("get", "/healthz"), ("get", "/v1/models"), ("post", "/v1/segment"), ("post", "/v1/measure")):
                answer = getattr(client, method)(path, headers=headers)
                assert answer.status_code == 401, (headers, path)
                assert answer.headers["www-authenticate"] == "Bearer" and "Authorization: Bearer TOKEN" in answer.json()["error"]
        # an unauthenticated upload over the limit is refused for the token, before its size matters
        assert post(client, b"x" * 10, headers={"Authorization": "Bearer nope"}).status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        assert client.get("/healthz", headers=good).json()["status"] == "ok"
        assert post(client, small_photo, headers=good).json()["model"] == "universal"
        assert client.get("/").status_code == 200 and client.get("/static/app.js").status_code == 200  # the page itself is public
        assert "HTTPBearer" in client.get("/openapi.json").text  # the docs show how to send it


def test_without_token_everything_is_open_and_cors_is_off(client):
    assert client.get("/healthz").status_code == 200
    answer = client.get("/v1/models", headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in answer.headers
    models = answer.json()
    from m2unet.weights import PRETRAINED_NAMES

    assert [m["name"] for m in models["models"]] == list(PRETRAINED_NAMES)
    assert models["models"][0]["threshold"] == pytest.approx(0.631, abs=1e-3) and models["limits"]["upload_bytes"] == 50 * 2**20


def test_cors_when_asked(export_cache):
    with client_for(cors=("https://viewer.example",)) as client:
        allowed = client.get("/healthz", headers={"Origin": "https://viewer.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://viewer.example"
        other = client.get("/healthz", headers={"Origin": "https://elsewhere.example"})
        assert "access-control-allow-origin" not in other.headers
        preflight = client.options("/v1/segment", headers={"Origin": "https://viewer.example", "Access-Control-Request-Method": "POST",
                                                           "Access-Control-Request-Headers": "authorization"})
        assert preflight.status_code == 200 and "authorization" in preflight.headers["access-control-allow-headers"].lower()


def test_page_assets_are_local(client):
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("static/app.js", "static/style.css"):
        assert f'"{asset}"' in page.text and client.get("/" + asset).status_code == 200
    combined = page.text + client.get("/static/app.js").text + client.get("/static/style.css").text
    assert "http://" not in combined and "https://" not in combined and "//cdn" not in combined


def test_loopback_rule():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.8.9.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("::") and not is_loopback("example.org")
    check_exposure("127.0.0.1", None)
    check_exposure("0.0.0.0", "tok")
    with pytest.raises(Exception, match=r"--host 0.0.0.0 is reachable from other machines: give a --token"):
        check_exposure("0.0.0.0", None)


def test_pool_is_bounded():
    async def scenario():
        pool = Pool(workers=1, queue=1)
        from concurrent.futures import ThreadPoolExecutor

        pool.executor = ThreadPoolExecutor(max_workers=1)
        release = threading.Event()
        running = [asyncio.ensure_future(pool.run(release.wait, 10)) for _ in range(2)]  # one runs, one waits
        await asyncio.sleep(0.05)
        with pytest.raises(RequestError, match="server busy") as refused:
            await pool.run(lambda: None)
        release.set()
        assert await asyncio.gather(*running) == [True, True] and pool.in_flight == 0
        assert await pool.run(lambda: 7) == 7
        pool.executor.shutdown()
        return refused.value.status

    assert asyncio.run(scenario()) == 503


def test_measure_is_501_without_the_measurement_stage(client, monkeypatch):
    monkeypatch.setitem(sys.modules, "m2unet.measure", None)  # import fails as when the stage is not installed
    answer = client.post("/v1/measure", files={"vessels": ("v.png", png(np.zeros((32, 32), np.uint8)))})
    assert answer.status_code == 501
    assert answer.json() == {"error": "measurements are not available in this install (no m2unet.measure module)"}
    assert client.get("/v1/models").json()["measure"] is False


def test_measure_calls_the_measurement_stage(client, monkeypatch, small_photo):
    calls = []

    def measure(vessels, fov=None, pixel_size_um=None):
        calls.append((vessels.shape, vessels.dtype, None if fov is None else fov.mean(), pixel_size_um, vessels.mean()))
        return types.SimpleNamespace(summary={"vessel_density": np.float64(vessels.mean()), "fractal_dimension": float("nan")},
                                     segments=[{"segment": 0, "length_px": np.int64(12)}], junctions=[])

    monkeypatch.setitem(sys.modules, "m2unet.measure", types.SimpleNamespace(measure=measure))
    assert client.get("/v1/models").json()["measure"] is True
    vessels = np.zeros((40, 50), np.uint8)
    vessels[10:14, 5:45] = 255
    fov = np.zeros((40, 50), np.uint8)
    fov[2:38, 2:48] = 255
    answer = client.post("/v1/measure", files={"vessels": ("v.png", png(vessels)), "fov": ("f.png", png(fov))}, data={"pixel_size_um": "6.5"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["image"] == "v.png" and body["summary"] == {"vessel_density": pytest.approx(160 / 2000), "fractal_dimension": None}
    assert body["segments"] == [{"segment": 0, "length_px": 12}] and body["junctions"] == []
    assert calls[-1][:4] == ((40, 50), np.dtype(bool), pytest.approx(36 * 46 / 2000), 6.5)
    from_photo = post(client, small_photo, path="/v1/measure").json()
    assert from_photo["model"] == "universal" and calls[-1][0] == (480, 500) and 0.02 < calls[-1][4] < 0.2
    wrong = client.post("/v1/measure", files={"vessels": ("v.png", png(vessels)), "fov": ("f.png", png(fov[:30]))})
    assert wrong.status_code == 400 and wrong.json()["error"] == "f.png: size 50×30 does not match its image (50×40)"
    neither = client.post("/v1/measure", data={"pixel_size_um": "6.5"})
    assert neither.status_code == 400 and "either a photograph" in neither.json()["error"]
