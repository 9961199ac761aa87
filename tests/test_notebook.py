"""vav.show and `view`: the packaged viewer and a sample's folder served on 127.0.0.1, with byte ranges."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import vlm_attention_viz as vav
from vlm_attention_viz.notebook import ViewerServer, byte_range

from conftest import assert_refused

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sample_tiny"


@pytest.fixture
def viewer_dir(tmp_path: Path) -> Path:
    """Stands in for `npm run build`'s output: the server serves whatever build it is given."""
    folder = tmp_path / "viewer"
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_text("<!doctype html><title>VLM Attention Viz</title>")
    (folder / "assets" / "main.js").write_text("export {};")
    return folder


@pytest.fixture
def server(viewer_dir: Path) -> Iterator[ViewerServer]:
    running = ViewerServer(viewer_dir)
    running.start_in_background()
    yield running
    running.httpd.shutdown()
    running.httpd.server_close()


def get(url: str, range_header: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Range": range_header} if range_header else {})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), b""


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", (0, 99)),
        ("bytes=3100-", (3100, 3199)),
        ("bytes=-80", (3120, 3199)),
        ("bytes=3000-9999", (3000, 3199)),
        ("bytes=3200-3300", "unsatisfiable"),
        ("bytes=50-10", "unsatisfiable"),
        ("bytes=0-1,5-9", None),
        ("bytes=-", None),
        ("items=0-9", None),
        (None, None),
    ],
)
def test_a_range_header_names_the_bytes_to_send(header: str | None, expected: object) -> None:
    assert byte_range(header, 3200) == expected


def test_the_sample_is_read_by_range_and_listed(server: ViewerServer, tmp_path: Path) -> None:
    shutil.copytree(FIXTURE, tmp_path / "data" / "sample_tiny")
    base = f"http://127.0.0.1:{server.port}"
    page = server.page_path(tmp_path / "data" / "sample_tiny")
    data = page.split("data=")[1].split("&")[0].replace("%2F", "/")
    status, _, body = get(base + page.split("?")[0])
    assert status == 200 and b"VLM Attention Viz" in body
    status, _, body = get(f"{base}{data}index.json")
    assert status == 200 and [s["name"] for s in json.loads(body)["samples"]] == ["sample_tiny"]
    layer = (FIXTURE / "attn_layer_00.bin").read_bytes()
    status, headers, body = get(f"{base}{data}sample_tiny/attn_layer_00.bin", "bytes=3200-6399")
    assert status == 206 and body == layer[3200:6400]
    assert headers["Content-Range"] == f"bytes 3200-6399/{len(layer)}"
    status, headers, body = get(f"{base}{data}sample_tiny/attn_layer_00.bin")
    assert status == 200 and body == layer and headers["Accept-Ranges"] == "bytes"
    status, headers, _ = get(f"{base}{data}sample_tiny/attn_layer_00.bin", f"bytes={len(layer)}-")
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(layer)}"
    assert get(f"{base}/viewer/assets/main.js")[1]["Content-Type"] == "text/javascript"


def test_nothing_outside_what_was_registered_is_served(server: ViewerServer, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data / "sample_tiny")
    shutil.copytree(FIXTURE, data / ".hidden")
    (tmp_path / "secret.txt").write_text("not yours")
    (data / "sample_tiny" / "link.txt").symlink_to(tmp_path / "secret.txt")
    prefix = f"http://127.0.0.1:{server.port}{server.add_data_dir(data)}"
    for path in [".hidden/meta.json", "sample_tiny/link.txt", "..%2Fsecret.txt", "sample_tiny/../../secret.txt"]:
        assert get(prefix + path)[0] == 404, path
    assert get(f"http://127.0.0.1:{server.port}/data/unknownkey/sample_tiny/meta.json")[0] == 404
    assert get(f"http://127.0.0.1:{server.port}/viewer/../secret.txt")[0] == 404


def test_show_renders_an_iframe_of_the_viewer_on_the_sample(viewer_dir: Path, tmp_path: Path) -> None:
    sample = shutil.copytree(FIXTURE, tmp_path / "data" / "s")
    shown = vav.show(vav.open(sample), height=500, viewer_dir=viewer_dir)
    html = shown._repr_html_()
    assert html.startswith("<iframe") and 'height="500"' in html and shown.url in html
    assert shown.url.startswith("http://127.0.0.1:") and "sample=s" in shown.url
    assert get(shown.url)[0] == 200
    assert vav.show(sample, viewer_dir=viewer_dir).url.split("/viewer")[0] == shown.url.split("/viewer")[0]


def test_view_refuses_a_folder_that_is_no_sample(tmp_path: Path, viewer_dir: Path, capsys) -> None:
    (tmp_path / "notes").mkdir()
    args = ["view", tmp_path / "notes", "--viewer-dir", viewer_dir]
    assert_refused(capsys, args, "meta.json", tmp_path)


def test_view_without_a_built_viewer_says_how_to_build_one(tmp_path: Path, capsys) -> None:
    sample = shutil.copytree(FIXTURE, tmp_path / "s")
    assert_refused(capsys, ["view", sample, "--viewer-dir", tmp_path / "nothing"], "make viewer", tmp_path)
