"""``midi-rwkv studio``: the local web app (see midi_rwkv/studio and docs/studio-api.md)."""

from __future__ import annotations

import argparse
import socket
import sys
import webbrowser
from pathlib import Path

from midi_rwkv.errors import MidiRwkvError

LOCAL = ("127.0.0.1", "localhost")


def _check_port(host: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise MidiRwkvError(f"--port {port}: a port is a number from 1 to 65535")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as err:
            raise MidiRwkvError(f"cannot listen on {host}:{port} ({err.strerror}): pass another --port") from None


def run_studio(args) -> int:
    import uvicorn  # the server's libraries load only for this command

    from midi_rwkv.studio.server import Studio, build_app

    styles = {}
    if args.styles:
        folder = Path(args.styles)
        if not folder.is_dir():
            raise MidiRwkvError(f"--styles {folder}: not a folder")
        styles = {p.stem: p for p in sorted(folder.glob("*.safetensors"))}
    if args.host not in LOCAL:
        print(f"warning: --host {args.host} lets other machines on your network reach the studio "
              "(they still need its token)", file=sys.stderr)
    _check_port(args.host, args.port)
    studio = Studio(args.model, styles, args.state)
    studio.hosts = {f"{h}:{args.port}" for h in {*LOCAL, args.host}}
    studio.infiller()  # load the model (and check it) before serving
    url = f"http://{args.host if args.host not in ('0.0.0.0', '::') else '127.0.0.1'}:{args.port}/?token={studio.token}"
    if args.midi:
        path = Path(args.midi)
        if not path.is_file():
            raise MidiRwkvError(f"{path}: no such file")
        url += f"&song={studio.add_song(path.read_bytes(), path.name).id}"
    print(f"midi-rwkv studio: {url}", flush=True)
    if args.open:
        webbrowser.open(url)
    uvicorn.run(build_app(studio), host=args.host, port=args.port, log_level="warning")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "studio",
        help="co-create in the browser: pick bars, set controls, audition candidates, accept, undo, export",
        description="Start a local web studio on this machine and print its address (with a per-launch token). "
        "Nothing is fetched from the network; your file is never overwritten (export downloads a new one).",
    )
    p.add_argument("midi", nargs="?", help="a MIDI file to open (or open one in the page)")
    p.add_argument("--model", help="model .pth (default: the shipped midi_rwkv.pth)")
    p.add_argument("--state", help="a tuned style (.safetensors) used when the page asks for no preset")
    p.add_argument("--styles", help="a folder of style presets (.safetensors from tune-style) the page can choose from")
    p.add_argument("--port", type=int, default=8700, help="port (default: 8700)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--open", action=argparse.BooleanOptionalAction, default=False,
                   help="open the page in the default browser")
    p.set_defaults(run=run_studio)
