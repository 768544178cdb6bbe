"""vanlab: the live van on one machine, for `scripts/demo` and `scripts/daemon-e2e`.

Starts the real pieces, all on 127.0.0.1 or ptys, each wait bounded, everything killed on exit:

    lab = Lab(repo)                          # a temp dir; atexit/SIGTERM/SIGINT clean up
    pki = lab.pki("sim-01")                  # throw-away EC P-256 CA, server (IP:127.0.0.1) and client certs
    center = lab.receiver(pki)               # Receiver/receiver.py, ephemeral port, --record FILE
    peer = lab.modbus_peer()                 # Tests/Peers/modbus_peer.py on a socat pty pair (xy-md02, unit 1)
    peer.set_temperature(29.8)               # input register 1, signed °C × 10
    config = lab.config(bus=peer.client, center=center, pki=pki)   # Config/simulator.toml, adapted
    van = lab.daemon(binary, config, speed=40, simulate=trace, notify=lab.notify_socket())
    van.wait_for(r"^sound: cabin buzzer", timeout=10)
    center.accepted()                        # the receiver's records, duplicates left out

Python 3 standard library only; pymodbus is used by the peer script, in the repository's .venv.
Processes are started from the main thread only (each child dies with its parent through
PR_SET_PDEATHSIG, which follows the starting thread), each in a session of its own so that
cleanup can take its whole process group.
"""

from __future__ import annotations

import atexit
import ctypes
import datetime
import json
import math
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _child_setup() -> None:
    """In the child before exec: dies with the harness, and takes signals as a fresh process."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(number, signal.SIG_DFL)


class LabError(Exception):
    pass


def deadline_after(seconds: float) -> float:
    return time.monotonic() + seconds


def wait_until(predicate, timeout: float, interval: float = 0.02, what: str = "condition"):
    """Polls `predicate` until it returns something truthy (returned) or `timeout` passes (LabError)."""
    end = deadline_after(timeout)
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= end:
            raise LabError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Processes


class Child:
    """One child process of the lab, in a session (and process group) of its own."""

    def __init__(self, lab: "Lab", name: str, argv: list[str], **popen) -> None:
        if threading.current_thread() is not threading.main_thread():
            raise LabError("start processes from the main thread (PR_SET_PDEATHSIG follows the thread)")
        self.lab, self.name, self.argv = lab, name, argv
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(argv, preexec_fn=_child_setup, start_new_session=True, **popen)
        self.pid = self.process.pid
        lab._children.append(self)

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, number: int) -> None:
        if self.process.poll() is None:
            try:
                os.kill(self.pid, number)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float) -> int | None:
        """The exit status, or None if it is still running after `timeout`."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 3.0) -> int:
        """SIGTERM, then SIGKILL (the whole group) after `grace`; returns the exit status."""
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            if self.wait(grace) is None:
                self._group(signal.SIGKILL)
                self.process.wait(timeout=5)
        self._group(signal.SIGKILL)  # anything the child left behind in its group
        return self.process.returncode

    def kill(self) -> int:
        """SIGKILL at once (the child only: what is left of its group is taken at cleanup)."""
        self.signal(signal.SIGKILL)
        self.process.wait(timeout=5)
        return self.process.returncode

    def _group(self, number: int) -> None:
        try:
            os.killpg(self.pid, number)
        except (ProcessLookupError, PermissionError):
            pass


class LineReader:
    """Reads a stream line by line on a thread; each line kept with its arrival (monotonic) time."""

    def __init__(self, stream, name: str, parse=None, echo=None) -> None:
        self.lines: list = []
        self.closed = False
        self._parse = parse or (lambda at, text: (at, text))
        self._echo = echo
        self._condition = threading.Condition()
        self._thread = threading.Thread(target=self._run, args=(stream,), name=name, daemon=True)
        self._thread.start()

    def _run(self, stream) -> None:
        try:
            for raw in stream:
                at = time.monotonic()
                text = raw.decode("utf-8", "replace").rstrip("\n")
                item = self._parse(at, text)
                if self._echo:
                    self._echo(item)
                with self._condition:
                    self.lines.append(item)
                    self._condition.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self._condition:
                self.closed = True
                self._condition.notify_all()

    def wait_for(self, match, timeout: float, start: int = 0):
        """The first item at index >= start for which match(item) is truthy; None on timeout or EOF."""
        end = deadline_after(timeout)
        index = start
        with self._condition:
            while True:
                while index < len(self.lines):
                    if match(self.lines[index]):
                        return self.lines[index]
                    index += 1
                remaining = end - time.monotonic()
                if remaining <= 0 or self.closed:
                    return None
                self._condition.wait(remaining)

    def snapshot(self) -> list:
        with self._condition:
            return list(self.lines)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


# ---------------------------------------------------------------------------------------------
# The throw-away PKI


class PKI:
    def __init__(self, directory: str, vehicle_id: str) -> None:
        self.directory = directory
        self.vehicle_id = vehicle_id
        p = lambda name: os.path.join(directory, name)  # noqa: E731
        self.ca_cert, self.ca_key = p("ca.crt"), p("ca.key")
        self.server_cert, self.server_key = p("server.crt"), p("server.key")
        self.client_cert, self.client_key = p("client.crt"), p("client.key")
        os.makedirs(directory, mode=0o700, exist_ok=True)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        san = p("server.ext")
        with open(san, "w", encoding="utf-8") as file:
            file.write("subjectAltName=IP:127.0.0.1\n")
        self._openssl(["req", "-x509", *ec, "-keyout", self.ca_key, "-out", self.ca_cert,
                       "-subj", "/CN=vanlab-ca", "-days", "2"])
        for role, subject, extra in (("server", "/CN=127.0.0.1", ["-extfile", san]),
                                     ("client", f"/CN={vehicle_id}", [])):
            key, csr, cert = p(f"{role}.key"), p(f"{role}.csr"), p(f"{role}.crt")
            self._openssl(["req", *ec, "-keyout", key, "-out", csr, "-subj", subject])
            self._openssl(["x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey", self.ca_key,
                           "-CAcreateserial", "-days", "1", *extra, "-out", cert])
        for key in (self.ca_key, self.server_key, self.client_key):
            os.chmod(key, 0o600)

    @staticmethod
    def _openssl(args: list[str]) -> None:
        result = subprocess.run(["openssl", *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        if result.returncode != 0:
            raise LabError(f"openssl {' '.join(args[:2])} failed: {result.stderr.decode(errors='replace')}")


# ---------------------------------------------------------------------------------------------
# The reference center


class Receiver:
    def __init__(self, lab: "Lab", pki: PKI, extra: list[str] | None = None, timeout: float = 10) -> None:
        self.lab = lab
        self.directory = lab.path(f"receiver-{len(lab._children)}")
        os.makedirs(self.directory, exist_ok=True)
        self.record = os.path.join(self.directory, "received.jsonl")
        port_file = os.path.join(self.directory, "port.json")
        self.log_path = os.path.join(self.directory, "receiver.log")
        self._log = open(self.log_path, "wb")
        self.child = Child(
            lab, "receiver",
            [sys.executable, os.path.join(lab.repo, "Receiver", "receiver.py"), "--cert", pki.server_cert,
             "--key", pki.server_key, "--client-ca", pki.ca_cert, "--port", "0", "--control-port", "0",
             "--port-file", port_file, "--record", self.record, *(extra or [])],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)

        def ready():
            if not self.child.alive():
                raise LabError(f"the receiver exited ({self.child.process.returncode}): {self.log()}")
            try:
                with open(port_file, encoding="utf-8") as file:
                    return json.load(file)
            except (OSError, ValueError):
                return None

        ports = wait_until(ready, timeout, what="the receiver's port file")
        self.port, self.control_port = ports["port"], ports["control_port"]
        self.url = f"https://127.0.0.1:{self.port}/alerts"

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as file:
                return file.read()[-2000:]
        except OSError:
            return ""

    def records(self) -> list[dict]:
        """Every record so far (duplicates included), in arrival order; a half-written last line is left out."""
        try:
            with open(self.record, encoding="utf-8") as file:
                lines = file.read().split("\n")
        except FileNotFoundError:
            return []
        records = []
        for line in lines:
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError:
                    pass
        return records

    def accepted(self) -> list[dict]:
        """The alerts accepted once each (the center's view after dedupe), in arrival order."""
        return [r["alert"] for r in self.records() if not r.get("duplicate") and 200 <= r.get("status", 0) < 300]

    def wait_for(self, match, timeout: float, what: str = "an alert"):
        """The first accepted alert for which match(alert) is truthy, waiting at most `timeout`."""
        return wait_until(lambda: next((a for a in self.accepted() if match(a)), None), timeout, 0.05, what)

    def control(self, path: str, payload: dict | None = None) -> dict:
        """POST (with payload) or GET on the plain-HTTP control port: /mode, /reset, /stats, /received."""
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", self.control_port, timeout=5)
        try:
            if payload is None:
                connection.request("GET", path)
            else:
                body = json.dumps(payload).encode()
                connection.request("POST", path, body, {"Content-Type": "application/json"})
            answer = connection.getresponse()
            data = json.loads(answer.read() or b"null")
            if answer.status != 200:
                raise LabError(f"receiver {path}: {answer.status} {data}")
            return data
        finally:
            connection.close()

    def set_mode(self, **behaviour) -> dict:
        return self.control("/mode", behaviour)

    def stop(self) -> None:
        self.child.stop()
        self._log.close()


def received_at_monotonic(record: dict, lab: "Lab") -> float:
    """A record's received_at (wall clock, ms) on this process's monotonic clock."""
    stamp = record["received_at"].replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(stamp).timestamp() - lab.wall_minus_monotonic


# ---------------------------------------------------------------------------------------------
# The Modbus peer


class ModbusPeer:
    """Tests/Peers/modbus_peer.py, RTU on a socat pty pair (`--direct`: no fault proxy)."""

    def __init__(self, lab: "Lab", directory: str | None = None, devices: dict[int, str] | None = None,
                 direct: bool = True, baud: int = 9600, timeout: float = 20) -> None:
        self.lab = lab
        self.directory = directory or lab.path("modbus")
        self.devices = devices or {1: "xy-md02"}
        python = os.path.join(lab.repo, ".venv", "bin", "python")
        if not os.path.exists(python):
            raise LabError(f"{python} missing: run scripts/setup (it makes the .venv with pymodbus)")
        argv = [python, os.path.join(lab.repo, "Tests", "Peers", "modbus_peer.py"), "rtu", "--dir", self.directory,
                "--baud", str(baud)]
        if direct:
            argv.append("--direct")
        for unit, model in self.devices.items():
            argv += ["--device", f"{unit}={model}"]
        self._stderr = open(os.path.join(lab.path(), f"modbus-peer-{len(lab._children)}.log"), "wb")
        self.child = Child(lab, "modbus-peer", argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=self._stderr)
        self._answers: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._reader = LineReader(self.child.process.stdout, "modbus-peer-stdout",
                                  echo=lambda item: self._answers.put(item[1]))
        first = self._next_answer(timeout)
        if not first or not first.startswith("ready rtu "):
            self.child.stop()
            raise LabError(f"the Modbus peer did not start: {first!r}")
        self.client = first.split(" ", 2)[2]

    def _next_answer(self, timeout: float) -> str | None:
        try:
            return self._answers.get(timeout=timeout)
        except queue.Empty:
            return None

    def command(self, text: str, timeout: float = 5) -> str:
        """Sends one command line; returns the peer's "ok ..." answer (LabError on "error ..." or none)."""
        with self._lock:
            if not self.child.alive():
                raise LabError(f"the Modbus peer is gone (command {text!r})")
            self.child.process.stdin.write((text + "\n").encode())
            self.child.process.stdin.flush()
            answer = self._next_answer(timeout)
        if answer is None or not answer.startswith("ok"):
            raise LabError(f"Modbus peer: {text!r} -> {answer!r}")
        return answer

    def set_temperature(self, celsius: float, unit: int = 1) -> None:
        """xy-md02: input register 1, signed °C × 10."""
        self.command(f"set {unit} 4 1 {round(celsius * 10) & 0xFFFF}")

    def kill(self) -> None:
        """SIGKILL: the socat pair dies with it (the adapter is unplugged), and its pty links go
        too. A SIGKILLed socat leaves them dangling, and the kernel soon gives their pty numbers to
        other programs: the daemon, reopening the path, would talk to someone else's pty."""
        self.child.kill()
        self._stderr.close()
        for name in os.listdir(self.directory):
            path = os.path.join(self.directory, name)
            if os.path.islink(path):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass

    def stop(self) -> None:
        if self.child.alive():
            try:
                self.child.process.stdin.close()  # the peer exits when stdin closes
            except OSError:
                pass
            if self.child.wait(3) is None:
                self.child.stop()
        self.child.stop()
        self._stderr.close()


# ---------------------------------------------------------------------------------------------
# sd_notify


class NotifySocket:
    """A real AF_UNIX datagram socket, as systemd's NOTIFY_SOCKET; every datagram kept with its time."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.messages: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(path)
        self._socket.settimeout(0.1)
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closing:
            try:
                data = self._socket.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            at = time.monotonic()
            with self._lock:
                self.messages.append((at, data.decode("utf-8", "replace")))

    def snapshot(self) -> list[tuple[float, str]]:
        with self._lock:
            return list(self.messages)

    def assignments(self, name: str) -> list[tuple[float, str]]:
        """(time, value) of every NAME=value line received so far."""
        found = []
        for at, message in self.snapshot():
            for line in message.split("\n"):
                if line.startswith(name + "="):
                    found.append((at, line[len(name) + 1:]))
        return found

    def close(self) -> None:
        self._closing = True
        self._thread.join(1)
        self._socket.close()


# ---------------------------------------------------------------------------------------------
# The daemon


LEVEL_NAMES = {"3": "error", "4": "warning", "5": "notice", "6": "info", "7": "debug"}
PLAIN_PREFIX = re.compile(r"^(error|warning|notice|debug): ")
JOURNAL_PREFIX = re.compile(r"^<([0-7])>")


class LogLine:
    __slots__ = ("at", "level", "message", "raw")

    def __init__(self, at: float, text: str) -> None:
        self.at, self.raw = at, text
        if m := JOURNAL_PREFIX.match(text):
            self.level, self.message = LEVEL_NAMES.get(m.group(1), m.group(1)), text[m.end():]
        elif m := PLAIN_PREFIX.match(text):
            self.level, self.message = m.group(1), text[m.end():]
        else:
            self.level, self.message = "info", text

    def __repr__(self) -> str:
        return f"LogLine({self.at:.3f}, {self.raw!r})"


class Daemon:
    """`headcount run`, its stderr read line by line with arrival times."""

    def __init__(self, lab: "Lab", binary: str, config: str, speed: float = 1, simulate: str | None = None,
                 notify: NotifySocket | None = None, watchdog_usec: int | None = None,
                 profiles: str | None = None, extra: list[str] | None = None, echo: bool = False) -> None:
        self.lab = lab
        if simulate:
            simulate = os.path.abspath(simulate)
        binary = os.path.abspath(binary)  # the daemon runs in the lab's dir
        argv = [binary, "run", "--config", os.path.abspath(config),
                "--profiles", profiles or os.path.join(lab.repo, "HardwareProfiles")]
        if speed != 1:
            argv += ["--speed", f"{speed:g}"]
        if simulate:
            argv += ["--simulate", simulate]
        argv += extra or []
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "LISTEN_FDS")}
        if notify:
            env["NOTIFY_SOCKET"] = notify.path
        if watchdog_usec:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        self.speed = speed
        self.argv = argv
        self.child = Child(lab, "headcount", argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, env=env, cwd=lab.directory)
        self.started_at = self.child.started_at
        self.exited_at: float | None = None
        show = (lambda line: sys.stderr.write(f"  [{line.at - self.started_at:7.3f}] {line.raw}\n")) \
            if echo or os.environ.get("VANLAB_ECHO") else None
        self.stderr = LineReader(self.child.process.stderr, "headcount-stderr", parse=LogLine, echo=show)

    @property
    def pid(self) -> int:
        return self.child.pid

    def lines(self) -> list[LogLine]:
        return self.stderr.snapshot()

    def text(self) -> str:
        return "\n".join(line.raw for line in self.lines())

    def wait_for(self, pattern: str, timeout: float, start: int = 0) -> LogLine | None:
        """The first stderr line (index >= start) whose message matches the regex; None on timeout/exit."""
        regex = re.compile(pattern)
        return self.stderr.wait_for(lambda line: regex.search(line.message), timeout, start)

    def queued(self) -> list[tuple[str, int, float]]:
        """(type, seq, time) of every `alert queued: TYPE seq N` line so far."""
        out = []
        for line in self.lines():
            if m := re.match(r"alert queued: (\w+) seq (\d+)", line.message):
                out.append((m.group(1), int(m.group(2)), line.at))
        return out

    def wait(self, timeout: float) -> int | None:
        status = self.child.wait(timeout)
        if status is not None and self.exited_at is None:
            self.exited_at = time.monotonic()
            self.stderr.join(2)
        return status

    def terminate(self, timeout: float = 5) -> tuple[int | None, float]:
        """SIGTERM; returns (exit status or None, seconds until it exited)."""
        sent = time.monotonic()
        self.child.signal(signal.SIGTERM)
        status = self.wait(timeout)
        return status, (self.exited_at or time.monotonic()) - sent

    def kill(self) -> int:
        status = self.child.kill()
        self.exited_at = time.monotonic()
        self.stderr.join(2)
        return status

    def stop(self) -> None:
        self.child.stop()
        self.stderr.join(2)


# ---------------------------------------------------------------------------------------------
# Traces


def read_trace(path: str) -> tuple[dict, list[dict]]:
    """(header, steps) of a JSON Lines trace."""
    with open(path, encoding="utf-8") as file:
        lines = [json.loads(line) for line in file if line.strip()]
    return lines[0], lines[1:]


def trace_points(path: str, signal_id: str) -> list[tuple[float, object]]:
    """(t, value) of every change of one signal in a trace."""
    _, steps = read_trace(path)
    return [(float(s["t"]), s["value"]) for s in steps if s.get("signal") == signal_id and "value" in s]


def write_trace(path: str, sensors: list[dict], steps: list[dict], policy: dict | None = None) -> str:
    header = {"headcount_trace": 1, "sensors": sensors}
    if policy:
        header["policy"] = policy
    with open(path, "w", encoding="utf-8") as file:
        for item in [header, *steps]:
            file.write(json.dumps(item) + "\n")
    return path


# ---------------------------------------------------------------------------------------------
# The lab


class Lab:
    """A temp dir and every process started in it; `close()` (also at exit and on SIGTERM/SIGINT/
    SIGHUP) stops them all and removes the dir (kept with keep=True or VANLAB_KEEP=1)."""

    def __init__(self, repo: str | None = None, keep: bool = False, prefix: str = "vanlab-") -> None:
        self.repo = os.path.abspath(repo or os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
        self.directory = tempfile.mkdtemp(prefix=prefix)
        self.keep = keep or bool(os.environ.get("VANLAB_KEEP"))
        self._children: list[Child] = []
        self._closers: list = []  # stop()/close() of what was started, called in reverse order
        self._closed = False
        self.wall_minus_monotonic = time.time() - time.monotonic()
        # Orphans (a peer's socat when the peer is SIGKILLed) come to us, and are reaped at close.
        _libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
        atexit.register(self.close)
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(number, self._on_signal)

    def _on_signal(self, number, frame) -> None:
        self.close()
        raise SystemExit(128 + number)

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def path(self, *parts: str) -> str:
        return os.path.join(self.directory, *parts)

    def pki(self, vehicle_id: str = "sim-01") -> PKI:
        return PKI(self.path("pki"), vehicle_id)

    def receiver(self, pki: PKI, extra: list[str] | None = None) -> Receiver:
        receiver = Receiver(self, pki, extra)
        self._closers.append(receiver.stop)
        return receiver

    def modbus_peer(self, directory: str | None = None, **options) -> ModbusPeer:
        peer = ModbusPeer(self, directory, **options)
        self._closers.append(peer.stop)
        return peer

    def notify_socket(self, name: str = "notify.sock") -> NotifySocket:
        sock = NotifySocket(self.path(name))
        self._closers.append(sock.close)
        return sock

    def config(self, name: str = "van.toml", bus: str | None = None, center: Receiver | None = None,
               pki: PKI | None = None, state_directory: str | None = None, vehicle_id: str | None = None,
               policy: dict | None = None, with_modbus: bool = True, base: str | None = None) -> str:
        """Config/simulator.toml (or `base`) adapted: state directory, the bus's serial device, a
        [center] with the PKI's client certificate, a [policy]. with_modbus=False drops the cabin
        sensor and the bus (a van with GPIO only)."""
        with open(base or os.path.join(self.repo, "Config", "simulator.toml"), encoding="utf-8") as file:
            text = file.read()
        state_directory = state_directory or self.path("state")
        text, count = re.subn(r'(?m)^state_directory = ".*"$', f'state_directory = "{state_directory}"', text)
        if count != 1:
            raise LabError("Config/simulator.toml: no state_directory line to adapt")
        if vehicle_id:
            text = re.sub(r'(?m)^vehicle_id = ".*"$', f'vehicle_id = "{vehicle_id}"', text)
        if with_modbus:
            if bus:
                text, count = re.subn(r'(?m)^device = ".*"$', f'device = "{bus}"', text)
                if count != 1:
                    raise LabError("Config/simulator.toml: no bus device line to adapt")
        else:
            # The cabin sensor's [[sensor]] and everything from the first [[modbus]] on.
            text = re.sub(r'\[\[sensor\]\]\nid = "cabin"\n(?:[^\[\n].*\n|\n)*', "", text)
            text = text.split("[[modbus]]")[0]
        if center:
            if pki is None:
                raise LabError("a [center] needs the PKI")
            text += (f'\n[center]\nurl = "{center.url}"\nclient_cert = "{pki.client_cert}"\n'
                     f'client_key = "{pki.client_key}"\nca_file = "{pki.ca_cert}"\n')
        if policy:
            text += "\n[policy]\n" + "".join(f"{k} = {v}\n" for k, v in policy.items())
        path = self.path(name)
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
        return path

    def daemon(self, binary: str, config: str, **options) -> Daemon:
        daemon = Daemon(self, binary, config, **options)
        self._closers.append(daemon.stop)
        return daemon

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception:  # noqa: BLE001 - cleanup goes on whatever one piece does
                pass
        for child in reversed(self._children):
            try:
                child.stop(grace=2)
            except Exception:  # noqa: BLE001
                pass
        self.reap_orphans()
        if self.keep:
            sys.stderr.write(f"vanlab: kept {self.directory}\n")
        else:
            shutil.rmtree(self.directory, ignore_errors=True)


    def reap_orphans(self) -> list[int]:
        """Kills and reaps what was adopted (we are a subreaper) and is not a child we started."""
        ours = {child.pid for child in self._children}
        adopted = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in ours:
                continue
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as file:
                    fields = file.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid():
                adopted.append(int(entry))
        for pid in adopted:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        return adopted


def trip_second(seconds: float) -> int:
    """The whole trip second an instant falls in, for display: log lines and records arrive a few
    milliseconds after the engine's instant (several trip seconds at high speed are never that
    late), and the anchor line itself arrives a little late; so floor, with 0.1 s of slack."""
    return math.floor(seconds + 0.1)


def format_trip_time(seconds: float) -> str:
    """+mm:ss (or -mm:ss) for trip seconds after ignition off."""
    whole = trip_second(seconds)
    sign = "-" if whole < 0 else "+"
    return f"{sign}{abs(whole) // 60:02d}:{abs(whole) % 60:02d}"
