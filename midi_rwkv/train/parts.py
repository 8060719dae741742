"""A file as parts of at most N MiB with a sha256 manifest, and the parts joined back, verified.

A GPU machine hands back only files of up to 16 MiB (``scripts/gpu-run.sh``), so a trained model travels as

    OUT/model.pth.part-000, OUT/model.pth.part-001, ...   each at most ``part_mib`` MiB
    OUT/model.pth.parts.json                               name, size and sha256 of the whole and of every part

The manifest is written last, so a folder with a manifest holds every part it names. Joining checks each part's
size and sha256 before writing anything, and the whole file's after, and writes atomically.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.io import atomic_write, atomic_write_json, file_sha256

FORMAT = "midi-rwkv-parts/1"
SUFFIX = ".parts.json"
_BLOCK = 1 << 20  # read in 1 MiB blocks: a part never sits in memory twice


class PartsError(MidiRwkvError):
    """Parts are missing, damaged or do not match their manifest."""


def split_file(path: str | Path, out_dir: str | Path, part_mib: float = 16) -> Path:
    """Write ``path`` as ``NAME.part-000...`` of at most ``part_mib`` MiB each into ``out_dir``, then the manifest.

    A file that fits in one part still gets a part and a manifest, so that joining is one path and every transfer
    is checked. Returns the manifest's path.
    """
    path, out_dir = Path(path), Path(out_dir)
    if not path.is_file():
        raise PartsError(f"{path}: no such file to split")
    part_bytes = int(part_mib * 2**20)
    if part_bytes < 1:
        raise PartsError(f"part size must be positive, got {part_mib} MiB")
    parts = []
    with path.open("rb") as f:
        while True:
            data = f.read(part_bytes)
            if not data and parts:
                break
            name = f"{path.name}.part-{len(parts):03d}"
            atomic_write(out_dir / name, lambda tmp, data=data: Path(tmp).write_bytes(data))
            parts.append({"file": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
            if len(data) < part_bytes:
                break
    manifest = {"format": FORMAT, "name": path.name, "size": path.stat().st_size, "sha256": file_sha256(path),
                "part_bytes": part_bytes, "parts": parts}
    return atomic_write_json(out_dir / f"{path.name}{SUFFIX}", manifest)


def find_manifest(where: str | Path) -> Path:
    """The manifest itself, or the one manifest in a folder."""
    where = Path(where)
    if where.is_file():
        return where
    found = sorted(where.glob(f"*{SUFFIX}")) if where.is_dir() else []
    if len(found) != 1:
        what = "no such folder" if not where.is_dir() else f"{len(found)} *{SUFFIX} manifests (need exactly one)"
        raise PartsError(f"{where}: {what}")
    return found[0]


def read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text())
        if manifest.get("format") != FORMAT or not isinstance(manifest.get("parts"), list):
            raise ValueError(f"not a {FORMAT} manifest")
        return manifest
    except (OSError, ValueError, AttributeError) as err:
        raise PartsError(f"{path}: unreadable parts manifest ({err})") from None


def join_parts(where: str | Path, out: str | Path) -> Path:
    """Join the parts a manifest names into ``out``, verifying every part and the whole; returns ``out``.

    Args:
        where: the manifest, or the folder that holds it and its parts.
        out: the file to write (atomically: a failed join leaves no file behind).
    """
    manifest_path = find_manifest(where)
    manifest = read_manifest(manifest_path)
    parts = [manifest_path.parent / p["file"] for p in manifest["parts"]]
    for part, entry in zip(parts, manifest["parts"]):  # all parts first: fail before writing anything
        if not part.is_file():
            raise PartsError(f"{part}: missing (the manifest names {len(parts)} parts)")
        if part.stat().st_size != entry["size"]:
            raise PartsError(f"{part}: {part.stat().st_size} bytes, the manifest says {entry['size']}")
        if file_sha256(part) != entry["sha256"]:
            raise PartsError(f"{part}: sha256 differs from the manifest (damaged in transfer?)")

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(_BLOCK):
                        f.write(block)
        if file_sha256(Path(tmp)) != manifest["sha256"]:
            raise PartsError(f"{manifest_path}: the joined file's sha256 differs from the manifest's")

    return atomic_write(out, write)
