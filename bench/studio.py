"""Studio latency: from the Generate request to the first candidate, as the page sees it (it polls every 150 ms).

    python bench/studio.py                    # the shipped model, the chorale fixture, 4 bars, 10 requests
    python bench/studio.py --midi song.mid --track 0 --bars 8
    python bench/studio.py --write-doc docs/studio.md    # and write the table into the document's block

Runs the real app in process (Starlette's TestClient): POST generate, then GET the job until a candidate is there.
Prints the median and worst time to the first candidate and to all K, per setting.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from starlette.testclient import TestClient

from midi_rwkv.studio.server import Studio, build_app

import docblock  # bench/docblock.py, beside this file

POLL = 0.15  # seconds, as the page polls


def run(client, token, song, track, bars, k, repeats):
    first, whole = [], []
    for seed in range(repeats):
        start = time.perf_counter()
        job = client.post(f"/api/songs/{song}/generate", json={"track": track, "bars": [0, bars], "n": k, "seed": seed},
                          headers={"X-Studio-Token": token}).json()["job"]
        seen = None
        while True:
            view = client.get(f"/api/jobs/{job}", headers={"X-Studio-Token": token}).json()
            if view["candidates"] and seen is None:
                seen = time.perf_counter() - start
            if view["status"] != "running":
                break
            time.sleep(POLL)
        first.append(seen)
        whole.append(time.perf_counter() - start)
    return first, whole


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--midi", default="tests/fixtures/bach_bwv66.6.mid")
    p.add_argument("--track", type=int, default=0)
    p.add_argument("--bars", type=int, default=4, help="bars from the start of the piece")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--model", help="model .pth (default: the shipped one)")
    docblock.add_arguments(p)
    args = p.parse_args()
    studio = Studio(args.model, {})
    studio.hosts = {"testserver"}
    song = studio.add_song(Path(args.midi).read_bytes(), Path(args.midi).stem)
    client = TestClient(build_app(studio))
    run(client, studio.token, song.id, args.track, args.bars, 1, 1)  # warm-up: model load, kernel build
    caption = (f"Engine {studio.infiller().generator.engine.name}, {args.bars} bars of track {args.track} of "
               f"`{args.midi}`, {args.repeats} requests per row:")
    lines = [caption, "", "| K | first candidate, median | worst | all K, median |", "|---:|---:|---:|---:|"]
    print("\n".join(lines))
    for k in (1, 4, 8):
        first, whole = run(client, studio.token, song.id, args.track, args.bars, k, args.repeats)
        median, worst, all_k = statistics.median(first), max(first), statistics.median(whole)
        lines.append(f"| {k} | {median:.2f} s | {worst:.2f} s | {all_k:.2f} s |")
        print(lines[-1], flush=True)
    docblock.write_from_args(args, "bench/studio.py", "\n".join(lines))


if __name__ == "__main__":
    main()
