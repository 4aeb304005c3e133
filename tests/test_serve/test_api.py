"""The HTTP API of a real ``lptn-serve`` process: results equal ``lptn-enhance``'s on the same
files, every refused request gets its status and a JSON error, and the server keeps serving."""

from __future__ import annotations

import http.client
import io
import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
import pytest
from photo_samples import adobe_icc, fivek_crop, phone_jpeg, pillow_bytes, srgb_to_adobe
from PIL import Image, ImageCms
from serve_test_utils import (
    REPO_ROOT,
    Server,
    decode,
    get_json,
    multipart,
    post,
    read_answer,
    stalled_upload,
    subprocess_env,
    upload_head,
    wait_for,
)

from lptn.photo.colour import srgb_profile_bytes

# Result file of lptn-enhance for each input that it writes in another format.
CLI_NAMES = {"heic": "photo_heic.jpg"}


def has_heif() -> bool:
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def crop(fivek_sample_dir: Path) -> np.ndarray:
    """A 120x176 uint8 sRGB crop of a FiveK photo, for the photos made below."""
    return fivek_crop(fivek_sample_dir, h=120, w=176)


@pytest.fixture(scope="module")
def inputs(
    photo_paths: List[Path],
    crop: np.ndarray,
    shared_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Dict[str, Path]:
    """In one folder: a PNG, a JPEG and a 16-bit PNG photo (from the FiveK sample); made by
    the photo tests' helpers: a phone JPEG stored turned (EXIF orientation 6), an Adobe
    RGB-tagged PNG, a grey PNG and (with the ``heif`` extra) a HEIC photo."""
    folder = tmp_path_factory.mktemp("serve_inputs")
    (folder / "phone.jpg").write_bytes(phone_jpeg(crop, 6))
    icc = adobe_icc(shared_dir)
    (folder / "adobe.png").write_bytes(
        pillow_bytes(srgb_to_adobe(crop, icc), "PNG", icc_profile=icc)
    )
    grey = np.asarray(Image.fromarray(crop).convert("L"))
    (folder / "grey.png").write_bytes(pillow_bytes(grey, "PNG"))
    made = {
        k: folder / n
        for k, n in [("phone", "phone.jpg"), ("adobe", "adobe.png"), ("grey", "grey.png")]
    }
    if has_heif():
        import pillow_heif

        heic = folder / "photo_heic.heic"
        pillow_heif.from_pillow(Image.fromarray(crop)).save(heic, quality=95)
        made["heic"] = heic
    png = folder / "photo.png"
    png.write_bytes(photo_paths[0].read_bytes())
    bgr = cv2.imread(str(photo_paths[1]), cv2.IMREAD_COLOR)
    jpeg = folder / "photo_jpeg.jpg"
    assert cv2.imwrite(str(jpeg), bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
    deep = folder / "photo16.png"
    bgr16 = cv2.imread(str(photo_paths[2]), cv2.IMREAD_COLOR).astype(np.uint16) * 257
    bgr16[::7, ::5] += 100  # values an 8-bit image cannot hold
    assert cv2.imwrite(str(deep), bgr16)
    return {"png": png, "jpeg": jpeg, "png16": deep, **made}


@pytest.fixture(scope="module")
def cli_results(
    inputs: Dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Dict[str, Path]:
    """The same files through ``lptn-enhance`` (``python -m lptn.enhance``), built-in weights
    and default options, like the server."""
    out = tmp_path_factory.mktemp("serve_cli_out")
    folder = inputs["png"].parent
    cmd = [sys.executable, "-m", "lptn.enhance", "--input", str(folder), "--output", str(out)]
    cmd += ["--device", "cpu", "--no-progress"]
    done = subprocess.run(
        cmd, env=subprocess_env(), cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return {key: out / CLI_NAMES.get(key, path.name) for key, path in inputs.items()}


def read_stored(path: Path) -> np.ndarray:
    return decode(path.read_bytes())


def test_healthz_reports_model_device_precision_and_queue(server: Server) -> None:
    info = get_json(server.url + "/healthz")
    assert info["status"] == "ok"
    assert info["model"] == "LPTN"
    assert info["weights"] == "built-in"
    assert info["device"] == "cpu"
    assert info["precision"] == "fp32"
    assert info["queue_length"] == 0
    assert info["queue_size"] == 16
    assert info["formats"] == ["jpeg", "png", "tiff", "webp", "bmp"]
    assert ("heic" in info["input_formats"]) == has_heif()
    assert info["uploads_in_progress"] == 0 and info["max_uploads"] == 32
    assert info["upload_timeout_s"] == 60 and info["api_key_required"] is False


def test_page_is_served_without_external_resources(server: Server) -> None:
    import urllib.request

    with urllib.request.urlopen(server.url + "/", timeout=10) as response:
        page = response.read().decode()
        assert response.headers["content-type"].startswith("text/html")
    for asset in ("/static/app.js", "/static/style.css"):
        with urllib.request.urlopen(server.url + asset, timeout=10) as response:
            page += response.read().decode()
    assert 'id="file-input"' in page and "/v1/enhance" in page
    # Offline: no CDN, no web fonts, nothing fetched from another host.
    assert "http://" not in page and "https://" not in page and "//cdn" not in page


def enhanced(server: Server, inputs: Dict[str, Path], cli_results: Dict[str, Path], key: str):
    """The server's result for ``inputs[key]``, checked equal byte for byte to lptn-enhance's
    file, opened with Pillow."""
    status, headers, body = post(server.url, inputs[key].read_bytes(), "image/*")
    assert status == 200, body[:300]
    assert headers["content-type"] == Image.MIME[Image.open(cli_results[key]).format or ""]
    assert body == cli_results[key].read_bytes(), f"{key}: the server's result differs"
    return Image.open(io.BytesIO(body))


@pytest.mark.parametrize("key", ["png", "jpeg", "png16"])
def test_result_equals_lptn_enhance(
    server: Server, inputs: Dict[str, Path], cli_results: Dict[str, Path], key: str
) -> None:
    enhanced(server, inputs, cli_results, key)
    expected_type = "image/jpeg" if key == "jpeg" else "image/png"
    assert Image.MIME[Image.open(cli_results[key]).format or ""] == expected_type
    got = decode(cli_results[key].read_bytes())
    assert got.dtype == (np.uint16 if key == "png16" else np.uint8)
    assert np.abs(got.astype(int) - decode(inputs[key].read_bytes())).mean() > 2  # enhanced


def test_phone_jpeg_comes_back_upright_with_its_exif(
    server: Server, inputs: Dict[str, Path], cli_results: Dict[str, Path]
) -> None:
    stored = Image.open(inputs["phone"])
    assert stored.size == (120, 176) and stored.getexif()[0x0112] == 6  # stored turned
    out = enhanced(server, inputs, cli_results, "phone")
    assert out.format == "JPEG" and out.size == (176, 120)  # upright: wider than tall
    exif = out.getexif()
    assert exif[0x0112] == 1 and exif[0x010F] == "Google" and exif[0x0110] == "Pixel 7"
    assert exif.get_ifd(0x8825)[1] == "N"  # GPS kept
    assert b"Test Photographer" in (out.info.get("xmp") or b"")


def test_adobe_rgb_photo_comes_back_in_srgb(
    server: Server, inputs: Dict[str, Path], cli_results: Dict[str, Path], crop: np.ndarray
) -> None:
    sent = Image.open(inputs["adobe"])
    assert "Adobe" in ImageCms.getProfileDescription(
        ImageCms.ImageCmsProfile(io.BytesIO(sent.info["icc_profile"]))
    )
    out = enhanced(server, inputs, cli_results, "adobe")
    icc = out.info["icc_profile"]
    assert icc == srgb_profile_bytes()
    assert "sRGB" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    # The same picture as the sRGB photo's result: the network saw the photo in sRGB.
    plain = pillow_bytes(crop, "PNG")
    status, _, body = post(server.url, plain, "image/png")
    assert status == 200
    diff = np.asarray(out).astype(int) - decode(body)
    assert np.abs(diff).mean() < 1.5


def test_grey_photo_stays_grey(
    server: Server, inputs: Dict[str, Path], cli_results: Dict[str, Path]
) -> None:
    out = enhanced(server, inputs, cli_results, "grey")
    assert out.mode == "L" and out.size == (176, 120)
    sent = np.asarray(Image.open(inputs["grey"])).astype(int)
    assert np.abs(np.asarray(out).astype(int) - sent).mean() > 2  # enhanced


def test_heic_comes_back_as_jpeg(
    server: Server, inputs: Dict[str, Path], cli_results: Dict[str, Path]
) -> None:
    if "heic" not in inputs:
        pytest.skip("HEIC needs the 'heif' extra (pillow-heif)")
    out = enhanced(server, inputs, cli_results, "heic")
    assert out.format == "JPEG" and out.size == (176, 120)


def test_multipart_upload_gives_the_same_result(
    server: Server, inputs: Dict[str, Path], cli_results: Dict[str, Path]
) -> None:
    body, content_type = multipart("image", "photo.png", inputs["png"].read_bytes(), "image/png")
    status, _, result = post(server.url, body, content_type)
    assert status == 200, result[:300]
    np.testing.assert_array_equal(decode(result), read_stored(cli_results["png"]))


def test_strength_blends_input_and_result(
    server: Server, inputs: Dict[str, Path], tmp_path: Path
) -> None:
    """strength=0 returns the input; 0.5 is lptn-enhance --strength 0.5, byte for byte."""
    data = inputs["png16"].read_bytes()
    status, _, zero = post(server.url, data, "image/png", "?strength=0")
    assert status == 200
    np.testing.assert_array_equal(decode(zero), decode(data))
    status, _, half = post(server.url, data, "image/png", "?strength=0.5")
    assert status == 200
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "half.png").write_bytes(data)
    cmd = [sys.executable, "-m", "lptn.enhance", "--input", str(folder), "--strength", "0.5"]
    cmd += ["--output", str(tmp_path / "out"), "--device", "cpu", "--no-progress"]
    done = subprocess.run(
        cmd, env=subprocess_env(), cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert half == (tmp_path / "out" / "half.png").read_bytes()
    assert decode(half).dtype == np.uint16


@pytest.mark.parametrize(
    "fmt,media,signature",
    [
        ("jpeg", "image/jpeg", b"\xff\xd8"),
        ("png", "image/png", b"\x89PNG"),
        ("tiff", "image/tiff", b"II*\x00"),
        ("webp", "image/webp", b"RIFF"),
        ("bmp", "image/bmp", b"BM"),
    ],
)
def test_format_parameter(
    server: Server, inputs: Dict[str, Path], fmt: str, media: str, signature: bytes
) -> None:
    data = inputs["jpeg"].read_bytes()
    status, headers, body = post(server.url, data, "image/jpeg", f"?format={fmt}")
    assert status == 200, body[:300]
    assert headers["content-type"] == media
    assert body.startswith(signature)
    assert decode(body).shape == decode(data).shape


def error_of(status_headers_body) -> str:
    status, headers, body = status_headers_body
    assert headers["content-type"] == "application/json"
    payload = json.loads(body)
    assert payload["status"] == status
    assert "Traceback" not in payload["error"]
    return payload["error"]


def test_bad_requests_get_plain_json_errors(server: Server, inputs: Dict[str, Path]) -> None:
    png = inputs["png"].read_bytes()
    no_field = multipart("photo", "a.png", png, "image/png")
    cases = [
        # (what, response, expected status, words in the message)
        ("text as image", post(server.url, b"not a photo", "image/png"), 415, "not an image"),
        ("no image type", post(server.url, png, "text/plain"), 415, "Content-Type"),
        ("empty", post(server.url, b"", "image/png"), 400, "empty"),
        ("truncated", post(server.url, png[: len(png) // 2], "image/png"), 400, "truncated"),
        ("strength", post(server.url, png, "image/png", "?strength=1.5"), 400, "strength"),
        ("strength text", post(server.url, png, "image/png", "?strength=max"), 400, "strength"),
        ("format", post(server.url, png, "image/png", "?format=gif"), 400, "format"),
        (
            "misspelt",
            post(server.url, png, "image/png", "?strenght=0.5"),
            400,
            "unknown query parameter 'strenght'; did you mean 'strength'?",
        ),
        ("unknown", post(server.url, png, "image/png", "?size=9"), 400, "takes strength, format"),
        ("twice", post(server.url, png, "image/png", "?strength=1&strength=0"), 400, "once"),
        (
            "preview format",
            post(server.url, png, "image/png", "?format=png", path="/v1/preview"),
            400,
            "unknown query parameter 'format'; /v1/preview takes strength",
        ),
        ("no field", post(server.url, *no_field), 400, "'image'"),
        ("over 1 MB", post(server.url, b"\x89PNG" + bytes(1_200_000), "image/png"), 413, "1 MB"),
    ]
    for what, response, status, words in cases:
        assert response[0] == status, f"{what}: got {response[0]} {response[2][:200]!r}"
        assert words in error_of(response), what
    # The pixel limit (0.5 megapixels) is checked from the header, before decoding.
    big = np.zeros((800, 700, 3), np.uint8)
    response = post(server.url, cv2.imencode(".png", big)[1].tobytes(), "image/png")
    assert response[0] == 413 and "megapixels" in error_of(response)
    # An image format the server does not take is named.
    from PIL import Image

    gif = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(gif, format="GIF")
    response = post(server.url, gif.getvalue(), "image/gif")
    assert response[0] == 415 and "GIF images are not supported" in error_of(response)
    # Too small for the pyramid: a plain 400, not a server error.
    tiny = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes()
    response = post(server.url, tiny, "image/png")
    assert response[0] == 400 and "at least" in error_of(response)
    assert error_of(post(server.url + "/nowhere", png)) == "Not Found"
    # ... and the server still serves.
    assert post(server.url, png, "image/png")[0] == 200
    assert get_json(server.url + "/healthz")["queue_length"] == 0


def test_uploads_in_progress_hold_no_queue_slot(server: Server, inputs: Dict[str, Path]) -> None:
    """16 uploads held half-sent (the queue's size) leave the queue empty: another client is
    served meanwhile; then they finish and are served too."""
    data = inputs["png"].read_bytes()
    held = []
    for _ in range(16):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        conn.putrequest("POST", "/v1/enhance")
        conn.putheader("Content-Type", "image/png")
        conn.putheader("Content-Length", str(len(data)))
        conn.endheaders()
        conn.send(data[:1000])
        held.append(conn)
    wait_for(
        "16 uploads in progress",
        lambda: get_json(server.url + "/healthz")["uploads_in_progress"] == 16,
    )
    assert get_json(server.url + "/healthz")["queue_length"] == 0
    status, _, body = post(server.url, data, "image/png")
    assert status == 200, body[:300]
    for conn in held:
        conn.send(data[1000:])
    for conn in held:
        answer = conn.getresponse()
        assert answer.status == 200
        assert answer.read() == body
        conn.close()
    info = get_json(server.url + "/healthz")
    assert info["uploads_in_progress"] == 0 and info["queue_length"] == 0


def test_content_length_over_the_limit_is_refused_before_the_body(server: Server) -> None:
    """A head announcing 60 MB (the limit is 1 MB) and no body is answered 413 at once."""
    sock = stalled_upload(server, upload_head(), declared=60_000_000)
    try:
        status, headers, body = read_answer(sock, timeout=30)
    finally:
        sock.close()
    assert status == 413, body[:300]
    assert "1 MB" in error_of((status, headers, body))
    assert get_json(server.url + "/healthz")["uploads_in_progress"] == 0


def test_sixteen_concurrent_requests(
    server: Server, inputs: Dict[str, Path], cli_results: Dict[str, Path]
) -> None:
    keys = ["png", "jpeg"] * 8
    payloads = {k: inputs[k].read_bytes() for k in set(keys)}
    start = threading.Barrier(len(keys))

    def send(key: str):
        start.wait()
        return post(server.url, payloads[key], "image/*")

    with ThreadPoolExecutor(len(keys)) as pool:
        responses = list(pool.map(send, keys))
    for key, (status, _, body) in zip(keys, responses):
        assert status == 200, body[:300]
        np.testing.assert_array_equal(decode(body), read_stored(cli_results[key]))
    assert get_json(server.url + "/healthz")["queue_length"] == 0


def test_missing_extra_is_named(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['uvicorn'] = None; "
        "from lptn.serve.command import serve_main; sys.exit(serve_main([]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "'serve' extra" in done.stderr and "lptn[serve]" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_weights_is_a_one_line_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pth"
    done = subprocess.run(
        [sys.executable, "-m", "lptn.serve", "--weights", str(missing), "--device", "cpu"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert str(missing) in done.stderr and "Traceback" not in done.stderr


def test_chunked_upload_over_the_limit_is_refused_while_reading(server: Server) -> None:
    """No Content-Length: the limit is enforced on the bytes as they arrive."""
    port = int(server.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    chunks = [b"\x89PNG\r\n\x1a\n"] + [bytes(64 * 1024)] * 20  # about 1.3 MB
    conn.request(
        "POST",
        "/v1/enhance",
        body=iter(chunks),
        headers={"Content-Type": "image/png"},
        encode_chunked=True,
    )
    answer = conn.getresponse()
    payload = json.loads(answer.read())
    conn.close()
    assert answer.status == 413 and "1 MB" in payload["error"]
    assert get_json(server.url + "/healthz")["queue_length"] == 0


@pytest.mark.parametrize("key", ["png", "jpeg", "png16", "phone", "adobe", "grey", "heic", "dng"])
def test_preview_is_an_upright_8bit_srgb_png_of_any_input(
    server: Server,
    inputs: Dict[str, Path],
    crop: np.ndarray,
    cli_results: Dict[str, Path],
    key: str,
) -> None:
    """/v1/preview at strength 0 shows the photo as the pipeline reads it (upright, in sRGB)
    and at strength 1 the enhanced result, as 8-bit PNGs a browser shows (also of 16-bit,
    HEIC and RAW inputs); the sample photos are under the 1024-pixel preview size."""
    if key == "heic" and key not in inputs:
        pytest.skip("HEIC needs the 'heif' extra (pillow-heif)")
    if key == "dng":
        pytest.importorskip("rawpy", reason="RAW needs the 'raw' extra (pip install 'lptn[raw]')")
        pytest.importorskip("exiv2", reason="the test DNG gets its Exif sub-IFD from exiv2")
        from photo_samples import bayer_dng

        data = bayer_dng(crop, orientation=6)
    else:
        data = inputs[key].read_bytes()
    previews = {}
    for strength in ("0", "1"):
        status, headers, body = post(
            server.url, data, "image/*", f"?strength={strength}", path="/v1/preview"
        )
        assert status == 200, body[:300]
        assert headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(body)) as im:
            assert im.format == "PNG" and im.mode == ("L" if key == "grey" else "RGB")
            assert "icc_profile" not in im.info  # untagged: sRGB to a browser
            previews[strength] = np.asarray(im).astype(int)
    if key in cli_results:  # the enhanced preview is the API's result in 8 bits
        if key == "grey":  # decode() gives RGB
            stored = np.asarray(Image.open(cli_results[key]))
        else:
            stored = decode(cli_results[key].read_bytes())
        full = stored.astype(int) if stored.dtype == np.uint8 else np.round(stored / 257)
        assert previews["1"].shape == full.shape
        diff = np.abs(previews["1"] - full)
        if Image.open(cli_results[key]).format == "JPEG":  # the API's file is re-compressed
            assert diff.mean() < 2
        else:
            assert diff.max() <= 1
    if key in ("phone", "adobe", "dng"):  # upright and in sRGB, as the network saw it
        assert previews["0"].shape == crop.shape
        assert np.abs(previews["0"] - crop).mean() < (6 if key == "dng" else 2.5)
    assert np.abs(previews["1"] - previews["0"]).mean() > 2  # enhanced


def test_preview_is_scaled_down_to_1024_pixels(server: Server, photo_paths: List[Path]) -> None:
    """A 1280x375 photo (under the test server's 0.5 megapixels) is previewed at 1024x300."""
    bgr = cv2.imread(str(photo_paths[0]), cv2.IMREAD_COLOR)[:150]
    wide = cv2.resize(np.ascontiguousarray(bgr.transpose(1, 0, 2)), (1280, 375))
    data = cv2.imencode(".png", wide)[1].tobytes()
    status, _, body = post(server.url, data, "image/png", "?strength=1", path="/v1/preview")
    assert status == 200, body[:300]
    with Image.open(io.BytesIO(body)) as im:
        assert im.size == (1024, 300)


@pytest.mark.parametrize(
    "content_type,query,status",
    [("image/png", "", 413), ("text/plain", "", 415), ("image/png", "?strenght=1", 400)],
)
def test_refused_before_the_body_the_client_still_reads_the_answer(
    server: Server, content_type: str, query: str, status: int
) -> None:
    """urllib sends ``Connection: close`` and its whole body before it reads: 24 MB (more than
    the sockets buffer) refused from the head must not end in a reset connection."""
    got, _, body = post(server.url, bytes(24 * 1024 * 1024), content_type, query)
    assert got == status, body[:300]
    assert json.loads(body)["status"] == status
