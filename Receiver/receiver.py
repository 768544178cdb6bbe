#!/usr/bin/env python3
"""The reference center receiver for headcount's push protocol (docs/openapi.yaml).

HTTPS on 127.0.0.1 that REQUIRES a client certificate signed by the given CA, accepts
`POST /alerts`, dedupes by the alert's `id` (200 the first time, 409 for a duplicate), records
every alert it receives as JSON Lines, and can be told to misbehave (5xx, a given 4xx, slow
answers, dropped connections, huge or trickling answers, answers that are not HTTP or are broken,
redirects) for tests, the bench and the demo.

Python 3 standard library only. See Receiver/README.md.
"""

import argparse
import datetime
import http.server
import json
import os
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time

ALERT_TYPES = {
    "check_missed", "presence_alarm", "alarm_escalated", "alarm_acknowledged", "alarm_cleared",
    "sensor_fault", "sensor_recovered", "trip_closed", "heartbeat",
}
REQUIRED_FIELDS = ("id", "vehicle_id", "seq", "type", "occurred_at")
MODES = ("ok", "status", "slow", "drop", "drop-after-store", "huge", "huge-length", "stall",
         "garbage", "garbage-body", "bad-status-line", "huge-header", "header-drip", "redirect-http")
# What `garbage` sends instead of an HTTP answer: binary, then text that is not a status line.
GARBAGE = bytes([0x00, 0xFF, 0x16, 0x03, 0x03, 0x7F, 0x80, 0xC0]) + b"this is not HTTP\r\n\r\n" + bytes(range(256))
MAX_REQUEST_BYTES = 1 << 20


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_atomically(path, text):
    temporary = f"{path}.tmp.{os.getpid()}.{threading.get_ident()}"
    with open(temporary, "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(temporary, path)


class Behaviour:
    """What the receiver does with the next alert POSTs: `mode`, for `times` more (None: always)."""

    def __init__(self, mode="ok", status=503, delay_s=0.0, huge_bytes=1 << 20, times=None, retry_after=None,
                 status_line=None, location=None):
        self.mode, self.status, self.delay_s, self.huge_bytes, self.times = mode, status, delay_s, huge_bytes, times
        self.retry_after, self.status_line, self.location = retry_after, status_line, location

    @classmethod
    def from_json(cls, data, base):
        mode = data.get("mode", "ok")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r} (one of {', '.join(MODES)})")
        times = data.get("times")
        if times is not None and (not isinstance(times, int) or times < 1):
            raise ValueError("times must be a positive integer or null")
        return cls(mode, int(data.get("status", base.status)), float(data.get("delay_s", base.delay_s)),
                   int(data.get("huge_bytes", base.huge_bytes)), times, data.get("retry_after", base.retry_after),
                   data.get("status_line", base.status_line), data.get("location", base.location))

    def as_json(self):
        return {"mode": self.mode, "status": self.status, "delay_s": self.delay_s,
                "huge_bytes": self.huge_bytes, "times": self.times, "retry_after": self.retry_after,
                "status_line": self.status_line, "location": self.location}


class Center:
    """The receiver's state, shared by every connection thread."""

    def __init__(self, record_path, stats_path, behaviour):
        self.lock = threading.Lock()
        self.record_path, self.stats_path = record_path, stats_path
        self.behaviour = behaviour
        self.reset_locked()
        self.write_stats_locked()

    def reset_locked(self):
        self.seen_ids = set()
        self.records = []
        self.stats = {"tcp_connections": 0, "tls_handshakes": 0, "tls_failures": 0, "tls_failure_reasons": [],
                      "requests": 0, "alerts_accepted": 0, "duplicates": 0, "faults_injected": 0,
                      "diagnose_pings": 0}

    def write_stats_locked(self):
        if self.stats_path:
            write_atomically(self.stats_path, json.dumps(self.stats) + "\n")

    def count(self, key, reason=None):
        with self.lock:
            self.stats[key] += 1
            if reason is not None:
                self.stats["tls_failure_reasons"] = (self.stats["tls_failure_reasons"] + [reason])[-20:]
            self.write_stats_locked()
            return self.stats[key]

    def next_behaviour(self):
        """The behaviour for this request; counts down a limited one."""
        with self.lock:
            current = self.behaviour
            if current.mode == "ok":
                return current
            if current.times is not None:
                current.times -= 1
                if current.times <= 0:
                    self.behaviour = Behaviour(status=current.status, delay_s=current.delay_s,
                                               huge_bytes=current.huge_bytes, retry_after=current.retry_after,
                                               status_line=current.status_line, location=current.location)
            self.stats["faults_injected"] += 1
            self.write_stats_locked()
            return current

    def store(self, alert, key, connection, client_cn, status_if_new):
        """Records one received alert; returns (status, duplicate)."""
        with self.lock:
            duplicate = alert["id"] in self.seen_ids
            status = 409 if duplicate else status_if_new
            if not duplicate and 200 <= status < 300:
                self.seen_ids.add(alert["id"])
            self.stats["duplicates" if duplicate else "alerts_accepted"] += 1
            record = {"n": len(self.records) + 1, "received_at": now_rfc3339(), "connection": connection,
                      "client_cn": client_cn, "idempotency_key": key, "status": status,
                      "duplicate": duplicate, "alert": alert}
            self.records.append(record)
            if self.record_path:
                with open(self.record_path, "a", encoding="utf-8") as file:
                    file.write(json.dumps(record, separators=(",", ":")) + "\n")
                    file.flush()
            self.write_stats_locked()
            return status, duplicate

    def snapshot(self):
        with self.lock:
            return list(self.records), dict(self.stats), self.behaviour.as_json()


def answer_json(handler, status, payload, close=False, retry_after=None):
    body = (json.dumps(payload) + "\n").encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    if retry_after is not None:
        handler.send_header("Retry-After", str(retry_after))
    handler.send_header("Content-Length", str(len(body)))
    if close:
        handler.send_header("Connection", "close")
        handler.close_connection = True
    handler.end_headers()
    handler.wfile.write(body)


class ControlHandler(http.server.BaseHTTPRequestHandler):
    """Read-only views and the behaviour switch; shared by the HTTPS port and the control port."""

    protocol_version = "HTTP/1.1"
    server_version = "headcount-receiver/1"

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        if self.server.verbose:
            sys.stderr.write("receiver: %s %s\n" % (self.address_string(), format % args))

    def read_body(self):
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or length is None:
            answer_json(self, 411, {"error": "Content-Length required (no chunked bodies)"}, close=True)
            return None
        try:
            length = int(length)
        except ValueError:
            answer_json(self, 400, {"error": "bad Content-Length"}, close=True)
            return None
        if length < 0 or length > MAX_REQUEST_BYTES:
            answer_json(self, 413, {"error": f"body over {MAX_REQUEST_BYTES} bytes"}, close=True)
            return None
        return self.rfile.read(length)

    def do_GET(self):
        records, stats, behaviour = self.server.center.snapshot()
        if self.path == "/received":
            answer_json(self, 200, records)
        elif self.path == "/stats":
            answer_json(self, 200, dict(stats, behaviour=behaviour))
        else:
            answer_json(self, 404, {"error": f"no such resource {self.path}"})

    def control_post(self):
        """POST /mode and POST /reset; returns False if the path is not one of them."""
        if self.path not in ("/mode", "/reset"):
            return False
        body = self.read_body()
        if body is None:
            return True
        center = self.server.center
        if self.path == "/reset":
            with center.lock:
                center.reset_locked()
                center.write_stats_locked()
            answer_json(self, 200, {"status": "reset"})
            return True
        try:
            data = json.loads(body or b"{}")
            with center.lock:
                center.behaviour = Behaviour.from_json(data, center.behaviour)
                current = center.behaviour.as_json()
        except (ValueError, TypeError, AttributeError) as error:
            answer_json(self, 400, {"error": str(error)})
            return True
        answer_json(self, 200, current)
        return True

    def do_POST(self):
        if not self.control_post():
            answer_json(self, 404, {"error": f"no such resource {self.path}"})


class AlertHandler(ControlHandler):
    """The center's side of the push protocol, on the mutual-TLS port."""

    def do_POST(self):
        center = self.server.center
        center.count("requests")
        if self.path == "/diagnose":
            self.answer_diagnose_ping()
            return
        if self.path != "/alerts":
            if self.server.allow_control_over_tls and self.control_post():
                return
            answer_json(self, 404, {"error": f"no such resource {self.path}; alerts go to POST /alerts"})
            return
        body = self.read_body()
        if body is None:
            return
        key = self.headers.get("Idempotency-Key")
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            answer_json(self, 415, {"error": "Content-Type must be application/json"})
            return
        try:
            alert = json.loads(body)
        except ValueError as error:
            answer_json(self, 400, {"error": f"body is not JSON: {error}"})
            return
        if not isinstance(alert, dict):
            answer_json(self, 422, {"error": "an alert is a JSON object"})
            return
        missing = [name for name in REQUIRED_FIELDS if name not in alert]
        if missing:
            answer_json(self, 422, {"error": f"missing field(s): {', '.join(missing)}"})
            return
        if alert["type"] not in ALERT_TYPES:
            answer_json(self, 422, {"error": f"unknown type {alert['type']!r}"})
            return
        if not isinstance(alert["id"], str) or key != alert["id"]:
            answer_json(self, 400, {"error": "Idempotency-Key header must equal the alert's id"})
            return

        behaviour = center.next_behaviour()
        mode = behaviour.mode
        if mode == "drop":
            self.drop()
            return
        if mode == "status":
            answer_json(self, behaviour.status, {"error": f"injected fault: status {behaviour.status}"},
                        close=behaviour.status >= 500, retry_after=behaviour.retry_after)
            return
        if mode == "garbage":
            self.answer_raw(GARBAGE)
            return
        if mode == "redirect-http":
            self.answer_redirect(behaviour)
            return
        if mode == "slow":
            time.sleep(behaviour.delay_s)
        status, duplicate = center.store(alert, key, self.server.connection_id(), self.client_cn(), 200)
        if mode == "drop-after-store":
            self.drop()
            return
        if mode in ("huge", "huge-length"):
            self.answer_huge(behaviour.huge_bytes, with_length=(mode == "huge-length"))
            return
        if mode == "stall":
            self.answer_trickling(behaviour.delay_s or 2.0)
            return
        if mode == "garbage-body":
            self.answer_garbage_body(behaviour.huge_bytes)
            return
        if mode == "bad-status-line":
            self.answer_raw((behaviour.status_line or "HTTP/1.1 2OO OK").encode("latin-1") + b"\r\n"
                            + b"Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            return
        if mode == "huge-header":
            self.answer_raw(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Padding: "
                            + b"x" * behaviour.huge_bytes + b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            return
        if mode == "header-drip":
            self.answer_dripping_headers(behaviour.delay_s or 1.0)
            return
        answer_json(self, status, {"status": "duplicate" if duplicate else "accepted", "id": alert["id"]})

    def answer_diagnose_ping(self):
        """POST /diagnose: `headcount diagnose` checking the link; nothing is stored."""
        body = self.read_body()
        if body is None:
            return
        try:
            ping = json.loads(body)
        except ValueError as error:
            answer_json(self, 400, {"error": f"body is not JSON: {error}"})
            return
        if not isinstance(ping, dict) or not isinstance(ping.get("vehicle_id"), str):
            answer_json(self, 422, {"error": "a diagnose ping is a JSON object with vehicle_id"})
            return
        self.server.center.count("diagnose_pings")
        answer_json(self, 200, {"status": "ok", "received_at": now_rfc3339(), "client_subject": self.client_cn(),
                                "vehicle_id": ping["vehicle_id"]})

    def client_cn(self):
        try:
            subject = self.connection.getpeercert().get("subject", ())
        except (AttributeError, ValueError):
            return None
        for entry in subject:
            for name, value in entry:
                if name == "commonName":
                    return value
        return None

    def drop(self):
        """Closes the connection without a word (after the request was read)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def answer_raw(self, data):
        """Sends `data` as it is, instead of an answer made by http.server, then closes."""
        self.close_connection = True
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            pass

    def answer_redirect(self, behaviour):
        """A 3xx (the given status if it is one, else 302) to plain http; nothing is stored."""
        status = behaviour.status if 300 <= behaviour.status < 400 else 302
        location = behaviour.location or f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        body = (json.dumps({"moved_to": location}) + "\n").encode()
        self.send_response(status)
        self.send_header("Location", location)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def answer_garbage_body(self, size):
        """200 with the length announced, and random bytes for a body: neither JSON nor text."""
        body = os.urandom(size)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def answer_dripping_headers(self, interval_s):
        """The status line and headers one byte every `interval_s` (a slow drip before any body)."""
        self.close_connection = True
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Drip: " + b"." * 64 \
            + b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
        try:
            for index in range(len(head)):
                self.wfile.write(head[index:index + 1])
                self.wfile.flush()
                time.sleep(interval_s)
        except OSError:
            pass  # the client gave up, as it should

    def answer_huge(self, size, with_length):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if with_length:
            self.send_header("Content-Length", str(size))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        chunk = b" " * 16384
        sent = 0
        try:
            while sent < size:
                piece = chunk[: min(len(chunk), size - sent)]
                if with_length:
                    self.wfile.write(piece)
                else:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
            if not with_length:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client gave up on the answer, as it should

    def answer_trickling(self, interval_s):
        """Headers at once, then one byte every `interval_s`: a stalled link."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "64")
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        try:
            for _ in range(64):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(interval_s)
        except OSError:
            pass


class ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class TLSReceiver(ThreadingServer):
    """Accepts TCP on the listening thread; the TLS handshake runs on the connection's thread."""

    def __init__(self, address, context, center, handshake_timeout_s, idle_timeout_s, verbose, allow_control):
        super().__init__(address, AlertHandler)
        self.context, self.center = context, center
        self.handshake_timeout_s, self.idle_timeout_s = handshake_timeout_s, idle_timeout_s
        self.verbose, self.allow_control_over_tls = verbose, allow_control
        self.local = threading.local()

    def connection_id(self):
        return getattr(self.local, "connection_id", None)

    def finish_request(self, request, client_address):
        self.center.count("tcp_connections")
        # Headers and body go out as separate writes: without this, Nagle holds the body back until
        # the client's delayed ACK (~40 ms) for every answer.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request.settimeout(self.handshake_timeout_s)
        try:
            tls = self.context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        except (ssl.SSLError, OSError):
            return
        try:
            tls.do_handshake()
        except (ssl.SSLError, OSError) as error:
            reason = getattr(error, "reason", None) or str(error)
            self.center.count("tls_failures", reason=str(reason))
            if self.verbose:
                sys.stderr.write(f"receiver: TLS handshake from {client_address[0]} refused: {error}\n")
            self.linger_after_refusal(tls)
            return
        try:
            self.local.connection_id = self.center.count("tls_handshakes")
            tls.settimeout(self.idle_timeout_s)
            self.RequestHandlerClass(tls, client_address, self)
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                tls.close()
            except OSError:
                pass

    @staticmethod
    def linger_after_refusal(request):
        """After a refused handshake: FIN, then read what the client still sends for a moment.

        With TLS 1.3 the client has already sent its request when our alert ("certificate
        required", "certificate expired"...) reaches it; closing with that request unread would
        send a TCP reset that can overtake the alert, and the client would only see "connection
        reset". Draining first lets it read why it was refused.
        """
        try:
            fd = request.fileno()
        except OSError:
            return
        if fd < 0:
            return
        plain = socket.socket(fileno=os.dup(fd))
        try:
            plain.shutdown(socket.SHUT_WR)
            plain.settimeout(1.0)
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline and plain.recv(4096):
                pass
        except OSError:
            pass
        finally:
            plain.close()
            try:
                request.close()
            except OSError:
                pass


class ControlServer(ThreadingServer):
    def __init__(self, address, center, verbose):
        super().__init__(address, ControlHandler)
        self.center, self.verbose = center, verbose


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description="headcount's reference center receiver (mutual TLS).")
    parser.add_argument("--cert", required=True, help="server certificate (PEM)")
    parser.add_argument("--key", required=True, help="server private key (PEM)")
    parser.add_argument("--client-ca", required=True, help="CA whose client certificates are accepted (PEM)")
    parser.add_argument("--port", type=int, default=8443, help="HTTPS port on 127.0.0.1; 0 = ephemeral")
    parser.add_argument("--port-file", help="write {\"port\", \"control_port\", \"pid\"} here once listening")
    parser.add_argument("--control-port", type=int, help="plain-HTTP control port on 127.0.0.1; 0 = ephemeral")
    parser.add_argument("--record", help="append every received alert here (JSON Lines)")
    parser.add_argument("--stats-file", help="keep the counters here (JSON, rewritten on every change)")
    parser.add_argument("--mode", choices=MODES, default="ok", help="fault to inject on alert POSTs")
    parser.add_argument("--status", type=int, default=503, help="status answered in --mode status")
    parser.add_argument("--delay", type=float, default=0.0,
                        help="seconds to wait in --mode slow; seconds between bytes in --mode stall and header-drip")
    parser.add_argument("--huge-bytes", type=int, default=1 << 20,
                        help="answer size in --mode huge/huge-length/garbage-body; header line size in huge-header")
    parser.add_argument("--retry-after", type=int, help="send Retry-After: N with --mode status")
    parser.add_argument("--status-line", help="the first line sent in --mode bad-status-line (default HTTP/1.1 2OO OK)")
    parser.add_argument("--location", help="Location of --mode redirect-http (default http://127.0.0.1:PORT/alerts)")
    parser.add_argument("--times", type=int, help="inject the fault on this many POSTs only, then answer normally")
    parser.add_argument("--tls-max", choices=("1.2", "1.3"), default="1.3", help="highest TLS version offered")
    parser.add_argument("--handshake-timeout", type=float, default=10.0)
    parser.add_argument("--idle-timeout", type=float, default=60.0, help="close idle keep-alive connections after")
    parser.add_argument("--control-over-tls", action="store_true", help="also serve POST /mode, /reset on HTTPS")
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_arguments(argv)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_3 if args.tls_max == "1.3" else ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_cert_chain(args.cert, args.key)
        context.load_verify_locations(cafile=args.client_ca)
    except (OSError, ssl.SSLError) as error:
        sys.stderr.write(f"receiver: cannot load certificates: {error}\n")
        return 2
    context.set_alpn_protocols(["http/1.1"])

    center = Center(args.record, args.stats_file,
                    Behaviour(args.mode, args.status, args.delay, args.huge_bytes, args.times, args.retry_after,
                              args.status_line, args.location))
    try:
        server = TLSReceiver(("127.0.0.1", args.port), context, center, args.handshake_timeout,
                             args.idle_timeout, args.verbose, args.control_over_tls)
        control = ControlServer(("127.0.0.1", args.control_port), center, args.verbose) \
            if args.control_port is not None else None
    except OSError as error:
        sys.stderr.write(f"receiver: cannot listen on 127.0.0.1: {error}\n")
        return 2
    port = server.server_address[1]
    control_port = control.server_address[1] if control else None
    if control:
        threading.Thread(target=control.serve_forever, name="control", daemon=True).start()
    if args.port_file:
        write_atomically(args.port_file, json.dumps({"port": port, "control_port": control_port,
                                                     "pid": os.getpid()}) + "\n")
    print(f"receiver: listening on https://127.0.0.1:{port}/alerts"
          + (f", control on http://127.0.0.1:{control_port}" if control else ""), flush=True)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    # A parent may have spawned us with SIGTERM blocked (posix_spawn passes the signal mask on).
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if control:
            control.shutdown()
            control.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
