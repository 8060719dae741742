"""A small OSC client for the tests: UDP or TCP (SLIP), messages out, replies in."""

from __future__ import annotations

import socket
import time

from pythonosc import slip
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import build_msg


class Client:
    def __init__(self, port: int, transport: str = "udp"):
        self.transport, self.port = transport, port
        if transport == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
        else:
            self.sock = socket.create_connection(("127.0.0.1", port))
        self.buffer = b""
        self.inbox: list[tuple[str, list]] = []

    def send(self, address: str, *args) -> None:
        self.raw(build_msg(address, list(args)).dgram)

    def raw(self, payload: bytes) -> None:
        if self.transport == "udp":
            self.sock.sendto(payload, ("127.0.0.1", self.port))
        else:
            self.sock.sendall(slip.encode(payload))

    def _read(self, timeout: float) -> None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return
        if self.transport == "udp":
            self.inbox.append(_parse(data))
            return
        self.buffer += data
        *frames, self.buffer = self.buffer.split(slip.END)
        self.inbox += [_parse(slip.decode(f)) for f in frames if f]

    def wait(self, address: str, timeout: float = 20.0, where=lambda args: True) -> list:
        """The arguments of the first message to ``address`` (matching ``where``) received so far or within
        ``timeout`` seconds; earlier messages stay in :attr:`inbox`."""
        end = time.monotonic() + timeout
        while True:
            for i, (a, args) in enumerate(self.inbox):
                if a == address and where(args):
                    del self.inbox[i]
                    return args
            if time.monotonic() > end:
                raise AssertionError(f"no {address} within {timeout} s; got {[a for a, _ in self.inbox]}")
            self._read(0.05)

    def close(self) -> None:
        self.sock.close()


def _parse(data: bytes) -> tuple[str, list]:
    message = OscMessage(data)
    return message.address, list(message.params)
