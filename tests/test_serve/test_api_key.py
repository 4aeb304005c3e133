"""The optional API key of a real ``lptn-serve`` (given in LPTN_API_KEY): /v1/ requests
without it or with a wrong one get 401 before their upload is read; the page, its files and
/healthz stay open; an empty key is refused at start."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Dict, List

import pytest
from serve_test_utils import API_KEY, REPO_ROOT, Server, decode, get_json, post, subprocess_env


@pytest.mark.parametrize(
    "path,headers,words",
    [
        ("/v1/enhance", {}, "needs an API key"),
        ("/v1/preview", {}, "needs an API key"),
        ("/v1/enhance", {"Authorization": "Bearer not-the-key"}, "not valid"),
        ("/v1/enhance", {"X-API-Key": API_KEY[:-1]}, "not valid"),
        ("/v1/enhance", {"Authorization": API_KEY}, "needs an API key"),  # no "Bearer"
        ("/v1/preview", {"X-API-Key": API_KEY + "x"}, "not valid"),
    ],
)
def test_missing_or_wrong_key_gets_401(
    keyed_server: Server, photo_paths: List[Path], path: str, headers: Dict[str, str], words: str
) -> None:
    data = photo_paths[0].read_bytes()
    before = get_json(keyed_server.url + "/healthz")["images_done"]
    status, answer_headers, body = post(keyed_server.url, data, headers=headers, path=path)
    assert status == 401, body[:300]
    assert answer_headers["www-authenticate"].startswith("Bearer")
    error = json.loads(body)["error"]
    assert words in error
    assert API_KEY not in error and "not-the-key" not in error
    assert get_json(keyed_server.url + "/healthz")["images_done"] == before


@pytest.mark.parametrize(
    "headers", [{"Authorization": f"Bearer {API_KEY}"}, {"X-API-Key": API_KEY}], ids=str
)
def test_right_key_is_served(
    keyed_server: Server, photo_paths: List[Path], headers: Dict[str, str]
) -> None:
    data = photo_paths[0].read_bytes()
    status, _, body = post(keyed_server.url, data, headers=headers)
    assert status == 200, body[:300]
    assert decode(body).shape == decode(data).shape
    status, answer_headers, body = post(
        keyed_server.url, data, headers=headers, path="/v1/preview", query="?strength=0"
    )
    assert status == 200 and answer_headers["content-type"] == "image/png"


def test_key_is_checked_before_the_upload_is_read(keyed_server: Server) -> None:
    """No key and a 60 MB Content-Length: 401, not 413 (an unknown client gets nothing else)."""
    status, _, body = post(keyed_server.url, b"\x89PNG", headers={"Content-Length": "60000000"})
    assert status == 401, body[:300]


def test_page_and_healthz_stay_open(keyed_server: Server) -> None:
    info = get_json(keyed_server.url + "/healthz")
    assert info["status"] == "ok" and info["api_key_required"] is True
    assert API_KEY not in json.dumps(info)
    for path in ("/", "/static/app.js"):
        with urllib.request.urlopen(keyed_server.url + path, timeout=10) as response:
            assert response.status == 200
            assert API_KEY.encode() not in response.read()


@pytest.mark.parametrize(
    "args,env,source",
    [([], {"LPTN_API_KEY": " "}, "LPTN_API_KEY"), (["--api-key", ""], {}, "--api-key")],
)
def test_empty_key_is_refused_at_start(args: List[str], env: Dict[str, str], source: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lptn.serve", "--device", "cpu", *args],
        env={**subprocess_env(), **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert f"{source} is empty" in done.stderr and "Traceback" not in done.stderr
