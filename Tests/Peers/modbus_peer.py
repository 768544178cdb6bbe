#!/usr/bin/env python3
"""The Modbus test peer of headcount: pymodbus serving the device models of
HardwareProfiles/devices, as an RTU server on a socat pty pair or as a TCP server on 127.0.0.1.

RTU:  modbus_peer.py rtu --dir DIR [--baud 9600] [--parity N] [--direct] [--pace]
          --device 1=xy-md02 --device 2=di16 ...
    libmodbus opens DIR/client. By default a byte proxy sits between two socat pty pairs so that
    answers can be corrupted, delayed, dropped or re-addressed on the way:

        DIR/client =socat= DIR/proxy-a <proxy> DIR/proxy-b =socat= DIR/server <- pymodbus

    --direct: one socat pair only (DIR/client =socat= DIR/server), no proxy, no line faults.
    --pace: the proxy paces bytes at the baud rate (10 or 11 bits a character), as a real line
    would; a pty has no baud rate of its own.

TCP:  modbus_peer.py tcp [--port 0] --device 1=xy-md02 ...
    Listens on 127.0.0.1 only; --port 0 (the default) takes a free ephemeral port.

Once serving, prints one line on stdout: "ready rtu DIR/client" or "ready tcp PORT".
Then reads commands on stdin, one a line, and answers each with "ok ..." or "error ...":

    delay UNIT MS        answers of UNIT (0: every unit) come MS ms late; a new request on the
                         line abandons a late answer, as a real single-tasking device does
    crc N                corrupt the CRC of the next N answers (-1: every answer, 0: stop)
    garbage on|off       put 3 to 8 random bytes before every answer
    noise N              write N random bytes towards the client now
    as-unit UNIT OTHER   answers of UNIT go out addressed from OTHER (CRC made right; 0: stop)
    mute UNIT on|off     UNIT does not answer at all
    truncate UNIT N      answers of UNIT lose their last N bytes: cut short, nothing follows (0: stop)
    short UNIT on|off    read answers of UNIT carry one data byte less than asked for, with the byte
                         count and the CRC made right (a well-formed frame of the wrong length)
    exception UNIT CODE  answers of UNIT become Modbus exception CODE (4: device failure, 6: busy;
                         CRC made right; 0: stop)
    set UNIT FN ADDR V,V...  set bits (FN 1, 2) or registers (FN 3, 4) of a unit
    stop | start         stop the pymodbus server (closes its port) or start it again
    quit

A unit that is not served gets no answer (as on a real RS-485 line). When stdin closes the peer
exits; the socat processes it started die with it, even when it is killed (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import random
import signal
import struct
import subprocess
import sys
import termios
import time
import tty

from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

# ---------------------------------------------------------------------------------------------
# Device models: plausible values at the addresses of HardwareProfiles/devices/*.toml.


def float32_low_first(values: list[float]) -> list[int]:
    registers: list[int] = []
    for value in values:
        high, low = struct.unpack(">HH", struct.pack(">f", value))
        registers += [low, high]
    return registers


def bits(values: list[int]) -> list[bool]:
    return [bool(v) for v in values]


DI16_INPUTS = [1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]  # channels 1, 3 and 16 occupied
DI16_MASK = sum(1 << i for i, v in enumerate(DI16_INPUTS) if v)

# (coils, discrete inputs, holding registers, input registers): lists of (address, values).
MODELS: dict[str, tuple[list, list, list, list]] = {
    # IR1 temperature 27.5 °C (×10, signed), IR2 humidity 65.1 %RH (×10).
    "xy-md02": ([], [], [(0x0101, [1, 96])], [(1, [275, 651])]),
    # Discrete inputs 0-15; the same inputs as a mask in HR 128.
    "di16": ([], [(0, bits(DI16_INPUTS))], [(128, [DI16_MASK])], []),
    # HR 0-3 kg × 10; HR 16-23 the same kg as float32, low word first.
    "loadcell4": ([], [], [(0, [0, 185, 0, 723]), (16, float32_low_first([0.0, 18.5, 0.0, 72.3]))], []),
    # IR0 meter status (0 = healthy), IR1-2 alarm and output status, IR3 CO2 612 ppm.
    "senseair-s8": ([], [], [], [(0, [0, 0, 0, 612])]),
}


def sim_device(unit: int, model: str, action) -> SimDevice:
    coils, inputs, holding, input_registers = MODELS[model]

    def block(entries, bit_block: bool, spare: int):
        out = [
            SimData(address, values=values, datatype=DataType.BITS if bit_block else DataType.REGISTERS)
            for address, values in entries
        ]
        # pymodbus wants every block non-empty: a spare cell far away from the model's addresses.
        if not out:
            out = [SimData(spare, values=[False] * 16 if bit_block else [0], datatype=DataType.BITS if bit_block else DataType.REGISTERS)]
        return out

    return SimDevice(
        unit,
        simdata=(
            block(coils, True, 9000),
            block(inputs, True, 9000),
            block(holding, False, 9000),
            block(input_registers, False, 9000),
        ),
        action=action,
    )


# ---------------------------------------------------------------------------------------------
# Line faults, shared by the proxy and the command reader.


class Faults:
    def __init__(self) -> None:
        self.delay_ms: dict[int, int] = {}
        self.crc_left = 0
        self.garbage = False
        self.as_unit: dict[int, int] = {}
        self.muted: set[int] = set()
        self.truncate: dict[int, int] = {}
        self.short: set[int] = set()
        self.exception: dict[int, int] = {}

    def delay_for(self, unit: int) -> int:
        return self.delay_ms.get(unit, self.delay_ms.get(0, 0))


def crc16(data: bytes) -> bytes:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return struct.pack("<H", crc)


def answer_length(buffer: bytes) -> int | None:
    """Length of the RTU answer at the start of buffer, None while incomplete."""
    if len(buffer) < 2:
        return None
    function = buffer[1]
    if function & 0x80:
        return 5
    if function in (1, 2, 3, 4):
        return 5 + buffer[2] if len(buffer) >= 3 else None
    if function in (5, 6, 15, 16):
        return 8
    return len(buffer)  # unknown: pass on what there is


def request_length(buffer: bytes) -> int | None:
    if len(buffer) < 2:
        return None
    function = buffer[1]
    if function in (1, 2, 3, 4, 5, 6):
        return 8
    if function in (15, 16):
        return 9 + buffer[6] if len(buffer) >= 7 else None
    return len(buffer)


def open_raw(path: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd)
    attributes = termios.tcgetattr(fd)
    attributes[3] &= ~termios.ECHO
    termios.tcsetattr(fd, termios.TCSANOW, attributes)
    return fd


class Line:
    """One direction of the proxy: writes chunks to a fd, paced at the baud rate if asked."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, char_seconds: float) -> None:
        self.loop = loop
        self.fd = fd
        self.char_seconds = char_seconds
        self.free_at = 0.0

    def send(self, data: bytes) -> None:
        if not data:
            return
        if self.char_seconds <= 0:
            self._write(data)
            return
        start = max(self.loop.time(), self.free_at)
        self.free_at = start + len(data) * self.char_seconds
        self.loop.call_at(self.free_at, self._write, data)

    def _write(self, data: bytes) -> None:
        try:
            os.write(self.fd, data)
        except OSError:
            pass


class Proxy:
    def __init__(self, loop, client_side: str, server_side: str, faults: Faults, char_seconds: float) -> None:
        self.loop = loop
        self.faults = faults
        self.client_fd = open_raw(client_side)
        self.server_fd = open_raw(server_side)
        self.to_server = Line(loop, self.server_fd, char_seconds)
        self.to_client = Line(loop, self.client_fd, char_seconds)
        self.requests = b""
        self.answers = b""
        self.late: list[asyncio.TimerHandle] = []
        loop.add_reader(self.client_fd, self.from_client)
        loop.add_reader(self.server_fd, self.from_server)

    def from_client(self) -> None:
        try:
            data = os.read(self.client_fd, 4096)
        except OSError:
            return
        self.to_server.send(data)
        self.requests += data
        while (length := request_length(self.requests)) is not None and len(self.requests) >= length:
            self.requests = self.requests[length:]
            # A new request: any answer still held back is abandoned, and bytes of an answer
            # cut short are forgotten.
            for handle in self.late:
                handle.cancel()
            self.late.clear()
            self.answers = b""

    def from_server(self) -> None:
        try:
            data = os.read(self.server_fd, 4096)
        except OSError:
            return
        self.answers += data
        while (length := answer_length(self.answers)) is not None and len(self.answers) >= length:
            frame, self.answers = self.answers[:length], self.answers[length:]
            self.answer(frame)

    def answer(self, frame: bytes) -> None:
        faults = self.faults
        unit = frame[0]
        if unit in faults.muted:
            return
        if faults.exception.get(unit):
            body = bytes([unit, frame[1] | 0x80, faults.exception[unit]])
            frame = body + crc16(body)
        elif unit in faults.short and frame[1] in (1, 2, 3, 4) and len(frame) > 5 and frame[2] > 0:
            body = bytes([unit, frame[1], frame[2] - 1]) + frame[3:-3]
            frame = body + crc16(body)
        if faults.truncate.get(unit):
            frame = frame[: max(0, len(frame) - faults.truncate[unit])]
        if faults.as_unit.get(unit):
            body = bytes([faults.as_unit[unit]]) + frame[1:-2]
            frame = body + crc16(body)
        if faults.crc_left:
            frame = frame[:-1] + bytes([frame[-1] ^ 0x5A])
            if faults.crc_left > 0:
                faults.crc_left -= 1
        if faults.garbage:
            frame = random.randbytes(random.randint(3, 8)) + frame
        delay = faults.delay_for(unit)
        if delay > 0:
            self.late.append(self.loop.call_later(delay / 1000, self.to_client.send, frame))
        else:
            self.to_client.send(frame)

    def noise(self, count: int) -> None:
        self.to_client.send(random.randbytes(count))


# ---------------------------------------------------------------------------------------------
# socat pty pairs, dying with this process.

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Dies with the parent, and takes signals as a fresh process would: a test runner may have
    blocked or ignored signals, and children inherit both."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)


def pty_pair(first: str, second: str) -> subprocess.Popen:
    for path in (first, second):
        if os.path.islink(path) or os.path.exists(path):
            os.unlink(path)
    process = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={first}", f"pty,raw,echo=0,link={second}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    deadline = time.monotonic() + 5
    while not (os.path.exists(first) and os.path.exists(second)):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"socat did not make {first} and {second}")
        time.sleep(0.01)
    return process


# ---------------------------------------------------------------------------------------------


class Peer:
    def __init__(self, args) -> None:
        self.args = args
        self.faults = Faults()
        self.server = None
        self.proxy: Proxy | None = None
        self.devices: dict[int, str] = {}
        for entry in args.device:
            unit, model = entry.split("=", 1)
            if model not in MODELS:
                raise SystemExit(f"unknown model {model} (known: {', '.join(MODELS)})")
            self.devices[int(unit)] = model
        self.port = args.port if args.transport == "tcp" else 0

    def simulated(self) -> list[SimDevice]:
        return [sim_device(unit, model, None) for unit, model in self.devices.items()]

    def trace_packet(self, sending: bool, packet: bytes) -> bytes:
        """Drops pymodbus's answers for units it does not serve (it answers them with a "device
        failure" exception): on a real line nobody answers, and the master times out."""
        if not sending:
            return packet
        at = 6 if self.args.transport == "tcp" else 0
        if len(packet) > at and packet[at] not in self.devices:
            return b""
        return packet

    async def start_server(self) -> None:
        if self.server is not None:
            return
        if self.args.transport == "tcp":
            server = ModbusTcpServer(
                self.simulated(),
                address=("127.0.0.1", self.port),
                ignore_missing_devices=True,
                trace_packet=self.trace_packet,
            )
            await server.serve_forever(background=True)
            self.port = server.transport.sockets[0].getsockname()[1]
        else:
            parity = self.args.parity
            server = ModbusSerialServer(
                self.simulated(),
                port=os.path.join(self.args.dir, "server"),
                baudrate=self.args.baud,
                parity=parity,
                bytesize=8,
                stopbits=1,
                ignore_missing_devices=True,
                reconnect_delay=0,
                trace_packet=self.trace_packet,
            )
            await server.serve_forever(background=True)
        self.server = server

    async def stop_server(self) -> None:
        if self.server is None:
            return
        server, self.server = self.server, None
        await server.shutdown()
        if self.args.transport == "tcp":
            # Drop the open connections too, as a dying server would.
            for connection in list(getattr(server, "active_connections", {}).values()):
                connection.close()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        socats: list[subprocess.Popen] = []
        if self.args.transport == "rtu":
            directory = self.args.dir
            os.makedirs(directory, exist_ok=True)
            client = os.path.join(directory, "client")
            server = os.path.join(directory, "server")
            if self.args.direct:
                socats.append(pty_pair(client, server))
            else:
                socats.append(pty_pair(client, os.path.join(directory, "proxy-a")))
                socats.append(pty_pair(os.path.join(directory, "proxy-b"), server))
                bits_per_char = 10 if self.args.parity == "N" else 11
                char_seconds = bits_per_char / self.args.baud if self.args.pace else 0.0
                self.proxy = Proxy(
                    loop, os.path.join(directory, "proxy-a"), os.path.join(directory, "proxy-b"), self.faults, char_seconds
                )
        try:
            await self.start_server()
            where = os.path.join(self.args.dir, "client") if self.args.transport == "rtu" else str(self.port)
            print(f"ready {self.args.transport} {where}", flush=True)
            await self.commands()
        finally:
            await self.stop_server()
            for process in socats:
                process.terminate()
            for process in socats:
                try:
                    process.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    process.kill()

    async def commands(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                return
            words = line.decode().split()
            if not words:
                continue
            try:
                if words[0] == "quit":
                    print("ok quit", flush=True)
                    return
                await self.command(words)
                print("ok " + " ".join(words), flush=True)
            except Exception as error:  # noqa: BLE001 - any bad command is reported, not fatal
                print(f"error {' '.join(words)}: {error}", flush=True)

    def need_proxy(self) -> Proxy:
        if self.proxy is None:
            raise RuntimeError("line faults need the proxy (rtu without --direct)")
        return self.proxy

    async def command(self, words: list[str]) -> None:
        faults = self.faults
        name, rest = words[0], words[1:]
        if name == "delay":
            self.need_proxy()
            faults.delay_ms[int(rest[0])] = int(rest[1])
        elif name == "crc":
            self.need_proxy()
            faults.crc_left = int(rest[0])
        elif name == "garbage":
            self.need_proxy()
            faults.garbage = rest[0] == "on"
        elif name == "noise":
            self.need_proxy().noise(int(rest[0]))
        elif name == "as-unit":
            self.need_proxy()
            faults.as_unit[int(rest[0])] = int(rest[1])
        elif name == "mute":
            self.need_proxy()
            if rest[1] == "on":
                faults.muted.add(int(rest[0]))
            else:
                faults.muted.discard(int(rest[0]))
        elif name == "truncate":
            self.need_proxy()
            faults.truncate[int(rest[0])] = int(rest[1])
        elif name == "short":
            self.need_proxy()
            if rest[1] == "on":
                faults.short.add(int(rest[0]))
            else:
                faults.short.discard(int(rest[0]))
        elif name == "exception":
            self.need_proxy()
            faults.exception[int(rest[0])] = int(rest[1])
        elif name == "set":
            unit, function, address = int(rest[0]), int(rest[1]), int(rest[2])
            values = [int(v, 0) for v in rest[3].split(",")]
            if self.server is None:
                raise RuntimeError("the server is stopped")
            error = await self.server.context.async_setValues(
                unit, function, address, [bool(v) for v in values] if function in (1, 2) else values
            )
            if error:
                raise RuntimeError(f"pymodbus refused: {error}")
        elif name == "stop":
            await self.stop_server()
        elif name == "start":
            await self.start_server()
        else:
            raise RuntimeError("unknown command")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("transport", choices=["rtu", "tcp"])
    parser.add_argument("--dir", help="rtu: directory for the pty links")
    parser.add_argument("--baud", type=int, default=9600)
    parser.add_argument("--parity", choices=["N", "E", "O"], default="N")
    parser.add_argument("--direct", action="store_true")
    parser.add_argument("--pace", action="store_true")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--device", action="append", default=[], help="UNIT=MODEL")
    args = parser.parse_args()
    if args.transport == "rtu" and not args.dir:
        parser.error("rtu needs --dir")
    if not args.device:
        parser.error("give at least one --device UNIT=MODEL")
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    # Signals as a fresh process has them (a test runner may block some; children inherit that).
    # No PR_SET_PDEATHSIG here: it follows the parent *thread*, and the thread of a test runner
    # that started this peer may end long before the test does. stdin's EOF ends the peer instead.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)
    asyncio.run(Peer(args).run())


if __name__ == "__main__":
    main()
