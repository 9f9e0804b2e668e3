"""One self-contained HTML file: the page's data, its script and styles, all inline.

No network, no server, no CDN: the file opens from disk. Charts and heatmaps are drawn as plain
SVG by `explore.js` (hover shows values, a click on a legend entry hides a system), so no
charting library is embedded.

The data is packed into one payload: every `bytes` value in it (the quantised attention of
`nmt.explore.data`) is moved to a binary tail and replaced by `{"$bin": [offset, length]}`;
the payload is [4-byte little-endian JSON length][JSON, UTF-8][binary tail], deflated (zlib)
and base64-encoded into a `<script type="application/octet-stream">` element. The page inflates
it with the browser's DecompressionStream. A full CPU sweep's explorer (8 systems x 1,000
sentences) is ~12 MB of JSON and bytes, a few MB packed. `read_page_data` reads it back.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from importlib import resources
from pathlib import Path
from typing import Any

from nmt.files import atomic_write_text


def _asset(name: str) -> str:
    return resources.files("nmt.explore").joinpath("assets", name).read_text(encoding="utf-8")


def _split_binary(value: Any, tail: bytearray) -> Any:
    """`value` with every bytes object moved to `tail` and replaced by a reference."""
    if isinstance(value, bytes | bytearray):
        ref = {"$bin": [len(tail), len(value)]}
        tail += value
        return ref
    if isinstance(value, dict):
        return {k: _split_binary(v, tail) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_split_binary(v, tail) for v in value]
    return value


def pack(data: dict[str, Any]) -> str:
    """The page's payload (see the module docstring), base64 text."""
    tail = bytearray()
    plain = _split_binary(data, tail)
    text = json.dumps(plain, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    body = text.encode("utf-8")
    payload = struct.pack("<I", len(body)) + body + bytes(tail)
    return base64.b64encode(zlib.compress(payload, 6)).decode("ascii")


def unpack(packed: str) -> tuple[dict[str, Any], bytes]:
    """The JSON data (binary references left in place) and the binary tail of a payload."""
    payload = zlib.decompress(base64.b64decode(packed))
    (n,) = struct.unpack("<I", payload[:4])
    return json.loads(payload[4 : 4 + n].decode("utf-8")), payload[4 + n :]


def read_page_data(path: str | Path) -> tuple[dict[str, Any], bytes]:
    """The data of a page `write_page` wrote (for tests and scripts)."""
    html = Path(path).read_text(encoding="utf-8")
    m = re.search(r'<script type="application/octet-stream" id="nmt-data">([^<]*)</script>', html)
    if m is None:
        raise ValueError(f"{path}: no nmt page data")
    return unpack(m[1])


def render(data: dict[str, Any]) -> str:
    """The page: `data` holds `title` and any of `leaderboard`, `charts`, `details`,
    `explorer` (see nmt.report.html and nmt.explore.data)."""
    title = str(data.get("title", "nmt"))
    escaped = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escaped}</title>\n<style>\n{_asset('explore.css')}</style>\n</head>\n"
        '<body>\n<div id="app"><p id="loading">loading…</p></div>\n'
        f'<script type="application/octet-stream" id="nmt-data">{pack(data)}</script>\n'
        f"<script>\n{_asset('explore.js')}</script>\n</body>\n</html>\n"
    )


def write_page(data: dict[str, Any], path: str | Path) -> Path:
    """Render and write the page atomically; returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, render(data))
    return path
