"""The serial line transport against a real pseudo-terminal peer."""
import time

import pytest

from hardware.errors import PortClosed, PortOpenError, ProtocolError, ReadTimeout
from hardware.sim.pty_device import PtyDevice
from hardware.transport import LineTransport


class Echo(PtyDevice):
    def on_line(self, line: str) -> None:
        self.send_line(f"echo {line}")


@pytest.fixture
def device():
    with Echo("echo") as dev:
        yield dev


@pytest.fixture
def link(device):
    with LineTransport(device.port_path, name="echo", read_timeout_s=0.3) as transport:
        yield transport


def test_round_trip_strips_line_ends(link):
    link.write_line("hello")
    assert link.read_line() == "echo hello"


def test_lines_split_across_chunks_and_several_per_chunk(device, link):
    device.send(b"par")
    time.sleep(0.02)
    device.send(b"tial\r\nsecond\r\nthi")
    assert link.read_line() == "partial"
    assert link.read_line() == "second"
    with pytest.raises(ReadTimeout, match="partial: b'thi'"):
        link.read_line(timeout_s=0.1)
    device.send(b"rd\n")
    assert link.read_line() == "third"


def test_silence_raises_read_timeout_naming_port(device, link):
    device.mute = True
    link.write_line("anyone?")
    started = time.monotonic()
    with pytest.raises(ReadTimeout, match="echo: no reply within 0.3 s"):
        link.read_line()
    assert time.monotonic() - started < 5  # bounded, not a hang


def test_garbage_without_line_end_is_a_protocol_error_and_buffer_recovers(device, link):
    device.send(bytes(range(1, 10)) * 200)  # 1800 bytes, no newline
    with pytest.raises(ProtocolError, match="without a line end"):
        link.read_line()
    device.send(b"\nfine\n")
    lines = []
    for _ in range(2):
        lines.append(link.read_line())
    assert "fine" in lines


def test_port_that_vanishes_raises_port_closed(device, link):
    device.vanish()
    with pytest.raises(PortClosed, match="went away"):
        link.write_line("x")
        link.read_line()
    assert not link.is_open


def test_open_missing_port_names_url():
    with pytest.raises(PortOpenError, match="/dev/does-not-exist"):
        LineTransport("/dev/does-not-exist", name="motion").open()


def test_reconnect_after_reopen(device, link):
    link.reconnect(attempts=2, delay_s=0.01)
    link.write_line("again")
    assert link.read_line() == "echo again"


def test_socket_url_reaches_a_serial_server():
    """A controller behind a serial-to-Ethernet server: pyserial's socket:// URL."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def serve():
        conn, _ = server.accept()
        with conn:
            data = conn.recv(100)
            conn.sendall(b"ok " + data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with LineTransport(f"socket://127.0.0.1:{port}", read_timeout_s=2) as link:
        link.write_line("ping")
        assert link.read_line() == "ok ping"
    thread.join(2)
    server.close()
