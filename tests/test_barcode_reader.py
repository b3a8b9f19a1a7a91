"""The code-reader driver against the Keyence SR-style emulator over a real pty: a read, a no-read,
a refused command, silence; and the same exchanges as a (sent, received) table replayed to the driver."""
import pytest

from hardware.barcode.reader import CodeReader, NoRead
from hardware.errors import ProtocolError, ReadTimeout
from hardware.sim.barcode_emulator import CodeReaderEmulator
from hardware.sim.part import make_part

# one table per behaviour (SR-750 manual ch. 8, timing ON/OFF): bytes the host sends → bytes the reader sends
READ_OK = [(b"LON\r", b"OK,LON\rSIM-000042\r")]
NO_READ = [(b"LON\r", b"OK,LON\rERROR\r")]
BUSY = [(b"LON\r", b"ER,LON,01\r")]


class Replay:
    """A LineTransport stand-in that checks what the driver sends and answers from a table."""

    def __init__(self, table):
        self.table, self.buffer, self.name = list(table), b"", "replay"

    def open(self):
        pass

    def close(self):
        pass

    def discard_input(self):
        self.buffer = b""

    def write_line(self, text):
        sent, reply = self.table.pop(0)
        assert text.encode() + b"\r" == sent
        self.buffer += reply

    def read_line(self, timeout_s=None):
        if b"\r" not in self.buffer:
            raise ReadTimeout("replay: silent")
        line, _, self.buffer = self.buffer.partition(b"\r")
        return line.decode()


def test_tables_replayed_to_the_driver():
    assert CodeReader(Replay(READ_OK)).read() == "SIM-000042"
    with pytest.raises(NoRead, match="no code read"):
        CodeReader(Replay(NO_READ)).read()
    with pytest.raises(ProtocolError, match="refused"):
        CodeReader(Replay(BUSY)).read()


@pytest.fixture
def reader_on_pty():
    fixture = {"part": make_part(42)}
    with CodeReaderEmulator(lambda: fixture["part"], read_time_s=0.01) as emulator:
        reader = CodeReader.open_url(emulator.port_path, timeout_s=0.5)
        try:
            yield emulator, reader, fixture
        finally:
            reader.close()


def test_reader_reads_the_serial_of_the_part_in_the_fixture(reader_on_pty):
    emulator, reader, fixture = reader_on_pty
    assert reader.read() == "SIM-000042"
    fixture["part"] = make_part(43)
    assert reader.read() == "SIM-000043" and emulator.triggers == 2
    assert b"".join(emulator.received).startswith(b"LON\r")


def test_no_read_is_an_error_naming_the_port(reader_on_pty):
    emulator, reader, fixture = reader_on_pty
    emulator.force_no_read = True
    with pytest.raises(NoRead, match=r"code reader .*port.*no code read \('ERROR'\)"):
        reader.read()
    emulator.force_no_read = False
    fixture["part"] = make_part(44, marked=False)  # an unmarked part reads as nothing, too
    with pytest.raises(NoRead):
        reader.read()
    fixture["part"] = None  # an empty fixture
    with pytest.raises(NoRead):
        reader.read()


def test_silent_reader_times_out_and_is_told_to_stop(reader_on_pty):
    emulator, reader, _ = reader_on_pty
    emulator.mute = True
    with pytest.raises(ReadTimeout, match="no acknowledge within"):
        reader.read(timeout_s=0.2)
    emulator.mute = False
    assert reader.read() == "SIM-000042"  # the next part reads normally


def test_emulator_table_both_ways(reader_on_pty):
    """The same table sent to the emulator: it answers what the table says the reader answers."""
    emulator, reader, _ = reader_on_pty
    port = reader.transport
    port.write_line("LON")
    assert [port.read_line(1.0), port.read_line(1.0)] == ["OK,LON", "SIM-000042"]
    emulator.read_time_s = 5.0
    port.write_line("LON")
    assert port.read_line(1.0) == "OK,LON"
    port.write_line("LON")  # a second trigger while reading
    assert port.read_line(1.0) == "ER,LON,01"
    port.write_line("LOFF")  # stop: acknowledged, then the read error
    assert [port.read_line(1.0), port.read_line(1.0)] == ["OK,LOFF", "ERROR"]
    port.write_line("XYZ")
    assert port.read_line(1.0) == "ER,XYZ,00"
