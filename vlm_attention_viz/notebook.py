"""The viewer without npm: `vav.show(sample)` inline in a notebook, `python -m vlm_attention_viz view DIR` in a browser.

One small HTTP server per process, bound to 127.0.0.1 and started on first use, serves the
built viewer that ships inside the package and the folders of the samples shown, with byte
ranges, so an 8k-token sample is read a few rows at a time, as from any static host. Nothing
leaves the machine and nothing is fetched from a CDN.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from . import sample_format as fmt
from .errors import UserError

PACKAGED_VIEWER = Path(__file__).parent / "viewer"  # the wheel's copy (make viewer)
CHECKOUT_VIEWER = Path(__file__).parents[1] / "web" / "dist"  # npm run build, in a source checkout
_CLOSED_OR_OPEN_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_COPY_CHUNK = 1 << 20


def find_viewer(viewer_dir: Path | None = None) -> Path:
    """The built viewer to serve: the one asked for, else the packaged one, else a checkout's web/dist."""
    for folder in [viewer_dir] if viewer_dir else [PACKAGED_VIEWER, CHECKOUT_VIEWER]:
        if (folder / "index.html").is_file():
            return folder
    where = viewer_dir or f"{PACKAGED_VIEWER} or {CHECKOUT_VIEWER}"
    raise UserError(f"no built viewer in {where}: run `make viewer` (needs npm), or install the package's wheel")


class ViewerServer:
    """Serves /viewer/ (the built app) and /data/KEY/ (one registered data folder per KEY) on 127.0.0.1."""

    def __init__(self, viewer_dir: Path, port: int = 0) -> None:
        self.viewer_dir = viewer_dir.resolve()
        self.data_dirs: dict[str, Path] = {}
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self.httpd.daemon_threads = True

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def add_data_dir(self, folder: Path) -> str:
        """Registers a folder of samples and returns its URL path, /data/KEY/."""
        folder = folder.resolve()
        key = hashlib.sha256(str(folder).encode()).hexdigest()[:12]
        self.data_dirs[key] = folder
        return f"/data/{key}/"

    def page_path(self, sample: Path) -> str:
        """The viewer's URL path and query for one sample."""
        data = self.add_data_dir(sample.parent)
        return f"/viewer/index.html?data={quote(data)}&sample={quote(sample.name)}"

    def start_in_background(self) -> None:
        threading.Thread(target=self.httpd.serve_forever, name="vav-viewer", daemon=True).start()

    def resolve(self, url_path: str) -> Path | dict[str, Any] | None:
        """The file a URL path names (or index.json's content), or None when it is not served."""
        parts = [unquote(p) for p in url_path.split("/") if p]
        if parts[:1] == ["viewer"]:
            return _inside(self.viewer_dir, parts[1:] or ["index.html"])
        if len(parts) >= 3 and parts[0] == "data" and parts[1] in self.data_dirs:
            root = self.data_dirs[parts[1]]
            if parts[2:] == [fmt.INDEX_FILE]:  # listed on the fly, by the one listing rule
                return {"samples": fmt.list_samples(root)}
            path = root.joinpath(*parts[2:])
            return path if fmt.is_served(root, path) and path.is_file() else None
        return None


def _inside(root: Path, parts: list[str]) -> Path | None:
    path = root.joinpath(*parts).resolve()
    return path if path.is_file() and path.is_relative_to(root) else None


def _handler_for(server: ViewerServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer(send_body=True)

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def _answer(self, send_body: bool) -> None:
            found = server.resolve(urlsplit(self.path).path)
            if found is None:
                self.send_error(HTTPStatus.NOT_FOUND)
            elif isinstance(found, dict):
                _send_json(self, found, send_body)
            else:
                _send_file(self, found, send_body)

        def log_message(self, format: str, *args: Any) -> None:  # a notebook cell is no place for access logs
            pass

    return Handler


def _send_json(handler: BaseHTTPRequestHandler, value: dict[str, Any], send_body: bool) -> None:
    body = json.dumps(value, ensure_ascii=False).encode()
    handler.send_response(HTTPStatus.OK)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Cache-Control", "no-cache")
    handler.end_headers()
    if send_body:
        handler.wfile.write(body)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """(first, last) of a single Range header, None to send the whole file, "unsatisfiable" for a range past
    the end. Several ranges at once are answered with the whole file, which HTTP allows."""
    match = _CLOSED_OR_OPEN_RANGE.fullmatch(header.strip()) if header else None
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # bytes=-n: the last n bytes
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    return "unsatisfiable" if start >= size or start > end else (start, end)


def _send_file(handler: BaseHTTPRequestHandler, path: Path, send_body: bool) -> None:
    size = path.stat().st_size
    wanted = byte_range(handler.headers.get("Range"), size)
    if wanted == "unsatisfiable":
        handler.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
        handler.send_header("Content-Range", f"bytes */{size}")
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return
    start, end = wanted if isinstance(wanted, tuple) else (0, size - 1)
    handler.send_response(HTTPStatus.PARTIAL_CONTENT if isinstance(wanted, tuple) else HTTPStatus.OK)
    handler.send_header("Content-Type", _content_type(path))
    handler.send_header("Content-Length", str(end - start + 1))
    handler.send_header("Accept-Ranges", "bytes")
    if isinstance(wanted, tuple):
        handler.send_header("Content-Range", f"bytes {start}-{end}/{size}")
    handler.end_headers()
    if send_body:
        _copy_bytes(path, start, end - start + 1, handler)


def _copy_bytes(path: Path, start: int, length: int, handler: BaseHTTPRequestHandler) -> None:
    with path.open("rb") as f:
        f.seek(start)
        while length > 0:
            chunk = f.read(min(_COPY_CHUNK, length))
            if not chunk:
                break
            handler.wfile.write(chunk)
            length -= len(chunk)


def _content_type(path: Path) -> str:
    if path.suffix == ".bin":
        return "application/octet-stream"
    if path.suffix in (".js", ".mjs"):  # module scripts and workers need a JavaScript type
        return "text/javascript"
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


_shared: ViewerServer | None = None
_shared_lock = threading.Lock()


def shared_server(viewer_dir: Path | None = None) -> ViewerServer:
    """This process's one server, started on first use and kept for the kernel's life."""
    global _shared
    with _shared_lock:
        if _shared is None or (viewer_dir and _shared.viewer_dir != find_viewer(viewer_dir).resolve()):
            _shared = ViewerServer(find_viewer(viewer_dir))
            _shared.start_in_background()
        return _shared


@dataclass
class InlineViewer:
    """What `show` returns: the notebook renders it as an iframe of the viewer; `url` opens it in a browser tab."""

    url: str
    height: int

    def _repr_html_(self) -> str:
        return (
            f'<iframe src="{self.url}" width="100%" height="{self.height}" '
            'style="border: 1px solid #ccc" title="VLM Attention Viz"></iframe>'
        )


def show(sample: Any, height: int = 760, viewer_dir: str | Path | None = None) -> InlineViewer:
    """The viewer inline in Jupyter, JupyterLab, VS Code or Colab, on a Sample (vav.open) or a sample folder."""
    folder = Path(getattr(sample, "path", sample))
    fmt.validate_sample(folder)
    server = shared_server(Path(viewer_dir) if viewer_dir else None)
    return InlineViewer(_browser_base(server.port) + server.page_path(folder).lstrip("/"), height)


def _browser_base(port: int) -> str:
    """Where the notebook's browser reaches the kernel's server: through Colab's proxy there, else directly."""
    try:
        from google.colab.output import eval_js  # type: ignore[import-not-found]
    except ImportError:
        return f"http://127.0.0.1:{port}/"
    return str(eval_js(f"google.colab.kernel.proxyPort({port})"))


def serve_forever(sample: Path, port: int, viewer_dir: Path | None) -> ServeResult:
    """`python -m vlm_attention_viz view DIR`: print the viewer's URL and serve until Ctrl-C."""
    fmt.validate_sample(sample)
    server = ViewerServer(find_viewer(viewer_dir), port)
    print(f"viewer at http://127.0.0.1:{server.port}{server.page_path(sample)} (Ctrl-C stops)", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    return ServeResult()


class ServeResult:
    """A view session leaves nothing to summarise."""

    def summary(self) -> str:
        return ""
