"""The studio page's vendored files match their manifest, carry their licences, and nothing loads from the web."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[2] / "midi_rwkv" / "studio" / "static"
VENDOR = STATIC / "vendor"
MANIFEST = VENDOR / "MANIFEST.json"

# files that are text about the code, not code the browser loads
NOT_LOADED = {"MANIFEST.json"}
NOT_LOADED_NAMES = re.compile(r"^(LICEN[CS]E|NOTICE|COPYING|README)(\.\w+)?$", re.IGNORECASE)
CHECKED_SUFFIXES = {".html", ".htm", ".css", ".js", ".mjs", ".svg", ".json", ".webmanifest"}
URL = re.compile(r"https?://[^\s\"'<>)]*", re.IGNORECASE)
XML_NAMESPACES = re.compile(r"https?://www\.w3\.org/[\w/.#-]*")  # xmlns values name a namespace; nothing loads
PROTOCOL_RELATIVE = re.compile(
    r"""(?:\b(?:src|href|srcset|action|poster|data)\s*=\s*["']?|url\(\s*["']?|@import\s+["'])//"""
)


def manifest() -> dict:
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


def manifest_files() -> dict[str, dict]:
    return {entry["path"]: entry | {"package": p["package"]} for p in manifest()["packages"] for entry in p["files"]}


def strip_comments(text: str, suffix: str) -> str:
    """Drop comments (HTML, CSS and JS ones) so that a URL in a comment or a licence header is not counted.

    A line comment starts a line or follows a space or ``;{}),``: the ``//`` of ``"https://..."`` or of
    ``href="//..."`` is not one, so those stay and are caught."""
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    if suffix in {".js", ".mjs", ".html", ".htm"}:
        text = re.sub(r"(^|[\s;{}),])//[^\n]*", r"\1", text, flags=re.MULTILINE)
    return text


def test_manifest_lists_every_vendored_file_with_its_sha256():
    listed = manifest_files()
    on_disk = {p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.is_file()} - NOT_LOADED
    assert on_disk == set(listed), f"not in MANIFEST.json: {on_disk - set(listed)}; missing: {set(listed) - on_disk}"
    for path, entry in listed.items():
        digest = hashlib.sha256((VENDOR / path).read_bytes()).hexdigest()
        assert digest == entry["sha256"], f"{path}: sha256 {digest} != manifest {entry['sha256']}"


def test_manifest_records_where_each_package_came_from():
    packages = manifest()["packages"]
    assert packages
    for p in packages:
        assert p["package"] and re.fullmatch(r"\d+\.\d+\.\d+", p["version"]), p
        assert p["license"], p
        assert p["tarball"].startswith("https://") and p["tarball"].endswith(f"-{p['version']}.tgz"), p
        assert re.fullmatch(r"sha512-[A-Za-z0-9+/]+=*", p["integrity"]), p
        assert all(f["path"].startswith(p["package"] + "/") for f in p["files"]), p


def test_each_package_ships_its_licence():
    for p in manifest()["packages"]:
        licences = [f["path"] for f in p["files"] if NOT_LOADED_NAMES.match(Path(f["path"]).name)]
        assert licences, f"{p['package']}: no LICENSE listed"
        for path in licences:
            assert (VENDOR / path).stat().st_size > 0, path


def test_the_synth_is_vendored_at_the_pinned_version():
    synth = {p["package"]: p for p in manifest()["packages"]}["webaudio-tinysynth"]
    assert synth["version"] == "1.1.3" and synth["license"] == "Apache-2.0"
    assert (VENDOR / "webaudio-tinysynth" / "webaudio-tinysynth.js").is_file()
    index = (STATIC / "index.html").read_text(encoding="utf-8")
    assert "/static/vendor/webaudio-tinysynth/webaudio-tinysynth.js" in index


def loaded_files() -> list[Path]:
    return sorted(
        p
        for p in STATIC.rglob("*")
        if p.is_file()
        and p.suffix.lower() in CHECKED_SUFFIXES
        and p.name not in NOT_LOADED
        and not NOT_LOADED_NAMES.match(p.name)
    )


def test_static_files_exist():
    names = {p.relative_to(STATIC).as_posix() for p in loaded_files()}
    assert {"index.html", "studio.css", "js/app.js"} <= names, names


@pytest.mark.parametrize("path", loaded_files(), ids=lambda p: p.relative_to(STATIC).as_posix())
def test_nothing_is_loaded_from_the_network(path: Path):
    """The page works offline: no http(s) or protocol-relative URL outside comments and licence text."""
    code = strip_comments(path.read_text(encoding="utf-8", errors="replace"), path.suffix.lower())
    urls = [u for u in URL.findall(code) if not XML_NAMESPACES.fullmatch(u)]
    assert not urls, f"{path.name} names URLs: {urls[:5]}"
    assert not PROTOCOL_RELATIVE.search(code), f"{path.name} loads a protocol-relative URL"


def test_the_url_check_catches_what_it_should():
    js = 'import x from "https://cdn.example/x.js"; // see https://example.org\n/* https://a.b */ let y = 1;'
    assert URL.findall(strip_comments(js, ".js")) == ["https://cdn.example/x.js"]
    html = '<!-- https://a.b --><link rel="stylesheet" href="//fonts.example/css"><script src="/static/a.js">'
    assert PROTOCOL_RELATIVE.search(strip_comments(html, ".html"))
    css = "/* http://x */ body { background: url(https://img.example/a.png) }"
    assert URL.findall(strip_comments(css, ".css")) == ["https://img.example/a.png"]
