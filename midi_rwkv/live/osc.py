"""The OSC endpoint of ``midi-rwkv live``: UDP (what DAWs and Max/Pd send) or TCP (OSC 1.1, SLIP frames), on this
machine's loopback address only.

python-osc parses and builds the messages; the endpoint owns its sockets so that every refusal is seen: a packet
that is not OSC, a message it does not take (:mod:`midi_rwkv.live.osc_messages`), a TCP client that goes away
mid-message. Each is logged as one line (and, where the sender can still hear it, answered with ``/live/error``), and
the endpoint carries on. A take's events go to the client that started it; when that client is gone (its replies
fail, or its TCP connection closes) the take stops and the endpoint waits for the next.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable

from pythonosc import slip
from pythonosc.osc_message_builder import build_msg
from pythonosc.osc_packet import OscPacket, ParseError

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.live.host import LiveHost
from midi_rwkv.live.osc_messages import BadMessage, event_message, handle

log = logging.getLogger("midi_rwkv.live")
TRANSPORTS = ("udp", "tcp")
MAX_PACKET = 65536  # bytes in one datagram or frame
POLL = 0.2  # seconds a receive waits before it looks whether the endpoint was closed


def loopback(host: str) -> str:
    """``host`` if it is this machine's loopback address (``localhost`` -> 127.0.0.1); anything else is refused."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise MidiRwkvError(f"--host {host!r}: give a loopback address, 127.0.0.1 or ::1") from None
    if not address.is_loopback:
        raise MidiRwkvError(f"--host {host}: the live endpoint listens on this machine only (127.0.0.1 or ::1); "
                            "it takes no connections from the network")
    return host


def encode(address: str, args: list) -> bytes:
    return build_msg(address, args).dgram


class OscEndpoint:
    """Listens on ``host:port`` (port 0: any free port, see :attr:`port`) and drives ``live``."""

    def __init__(self, live: LiveHost, host: str = "127.0.0.1", port: int = 9000, transport: str = "udp"):
        if transport not in TRANSPORTS:
            raise MidiRwkvError(f"transport {transport!r}: choose from {', '.join(TRANSPORTS)}")
        host = loopback(host)
        self.transport = transport
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        self.sock = socket.socket(family, kind)
        try:
            self.sock.bind((host, port))
        except OSError as err:
            self.sock.close()
            raise MidiRwkvError(f"cannot listen on {host}:{port} ({err.strerror}): pass another --port") from None
        if transport == "tcp":
            self.sock.listen(4)
        self.sock.settimeout(POLL)  # a blocked receive would not notice close()
        self.port = self.sock.getsockname()[1]
        self.address = f"{transport}://{host}:{self.port}"
        self.live = live
        live.listen(self._emit)
        self._client: tuple[str, Callable[[bytes], None]] | None = None  # who started the take, and how to reach it
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.closed = threading.Event()
        self._closing = threading.Event()
        self._serving = False

    # ---- serving -----------------------------------------------------------------------

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve, name="live-osc", daemon=True)
        thread.start()
        return thread

    def serve(self) -> None:
        """Receive until :meth:`close`."""
        self._serving = True
        try:
            if self.transport == "udp":
                self._serve_udp()
            else:
                self._serve_tcp()
        finally:
            self.closed.set()

    def _serve_udp(self) -> None:
        while not self._closing.is_set():
            try:
                data, peer = self.sock.recvfrom(MAX_PACKET)
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            who = f"{peer[0]}:{peer[1]}"

            def reply(payload: bytes, peer=peer) -> None:
                self.sock.sendto(payload, peer)

            self.receive(data, who, reply)

    def _serve_tcp(self) -> None:
        while not self._closing.is_set():
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            conn.settimeout(POLL)
            thread = threading.Thread(target=self._connection, args=(conn, f"{peer[0]}:{peer[1]}"), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _connection(self, conn: socket.socket, who: str) -> None:
        log.info("%s connected", who)
        buffer = b""

        def reply(payload: bytes) -> None:
            conn.sendall(slip.encode(payload))

        with conn:
            while not self._closing.is_set():
                try:
                    chunk = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError as err:
                    log.warning("%s: connection failed (%s)", who, err)
                    chunk = b""
                if not chunk:
                    break
                buffer += chunk
                *frames, buffer = buffer.split(slip.END)
                for frame in frames:
                    if frame:
                        self._frame(frame, who, reply)
                if len(buffer) > MAX_PACKET:
                    log.warning("refused: %s sent a frame over %d bytes; closing its connection", who, MAX_PACKET)
                    break
        if buffer.strip(slip.END):
            log.warning("%s disconnected mid-message (%d bytes dropped)", who, len(buffer))
        else:
            log.info("%s disconnected", who)
        self._gone(who)

    def _frame(self, frame: bytes, who: str, reply: Callable[[bytes], None]) -> None:
        try:
            data = slip.decode(slip.END + frame + slip.END)
        except slip.ProtocolError:
            self._refuse(who, reply, "malformed SLIP frame (a stray escape byte)")
            return
        self.receive(data, who, reply)

    # ---- messages --------------------------------------------------------------------

    def receive(self, data: bytes, who: str, reply: Callable[[bytes], None]) -> None:
        """One packet from ``who``: carry out its messages; refusals are logged and answered."""
        try:
            packet = OscPacket(data)
        except ParseError as err:
            self._refuse(who, reply, f"not an OSC packet ({err})")
            return
        for timed in packet.messages:
            message = timed.message
            try:
                if message.address == "/live/start":
                    with self._lock:
                        self._client = (who, reply)
                answers = handle(self.live, message.address, list(message.params))
            except BadMessage as err:
                self._refuse(who, reply, str(err))
                continue
            except Exception as err:  # a bug must not take the endpoint down
                log.exception("%s: %s failed", who, message.address)
                self._refuse(who, reply, f"{message.address} failed: {err}")
                continue
            for address, args in answers:
                self._send(who, reply, encode(address, args))

    def _refuse(self, who: str, reply: Callable[[bytes], None], why: str) -> None:
        log.warning("refused from %s: %s", who, why)
        self._send(who, reply, encode("/live/error", [why]))

    def _send(self, who: str, reply: Callable[[bytes], None], payload: bytes) -> bool:
        try:
            reply(payload)
            return True
        except OSError as err:
            log.warning("%s is gone (%s)", who, err.strerror or err)
            self._gone(who)
            return False

    def _emit(self, name: str, data: dict) -> None:
        with self._lock:
            client = self._client
        if client is not None:
            self._send(client[0], client[1], encode(*event_message(name, data)))

    def _gone(self, who: str) -> None:
        """A client went away: the take it started stops (the endpoint keeps listening)."""
        with self._lock:
            owner = self._client is not None and self._client[0] == who
            if owner:
                self._client = None
        if owner:
            log.warning("the take's client %s is gone: stopping the take", who)
            threading.Thread(target=self.live.stop, daemon=True).start()

    def close(self) -> None:
        """Stop the take and stop listening (waits for the receiving threads)."""
        self._closing.set()
        self.live.close()
        if self._serving:
            self.closed.wait(2 * POLL + 1)
        for thread in self._threads:
            thread.join(2 * POLL + 1)
        self.sock.close()
