#!/usr/bin/env python3
"""Hostile clients against the `notes` example, measured: writes docs/hostile-clients.md.

    python3 bench/attacks.py [--out PATH] [--keep-logs DIR]

Builds `cargo build --release --example notes` (CARGO_TARGET_DIR is honoured; do not share it
with another checkout of this repository, as cargo may then hand back the other checkout's binary
as up to date), serves it on a
free 127.0.0.1 port with a temporary database and short timeouts (see SETTINGS), seeds it until
GET /notes is about 1.5 MB, then runs each attack of issue 9 while a legitimate client keeps
making requests (a new connection each, alternately GET /notes/<id> and POST /notes), and writes
one table: attack | what the server did | figures.

Python 3 standard library only; HTTP/2 frames are built by hand (preface, SETTINGS, HEADERS with
a minimal HPACK encoding, SETTINGS/PING acknowledgements). All traffic goes to 127.0.0.1. Every
loop is bounded in count and time; every process and socket it starts is closed on the way out,
errors included. Progress goes to stderr. Exits 1 if a server crashed (or exited non-zero on
SIGTERM), 2 if the script itself failed to measure something.
"""

import argparse
import json
import os
import platform
import random
import resource
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"

# Shortened from the defaults (10s, 10s, 30s, 60s) so that the whole run takes 2-3 minutes.
SETTINGS = {
    "INTRALB_MAX_CONCURRENT": "4",
    "INTRALB_QUEUE": "8",
    "INTRALB_HEADER_READ_TIMEOUT": "2s",
    "INTRALB_BODY_TIMEOUT": "2s",
    "INTRALB_SEND_TIMEOUT": "3s",
    "INTRALB_CONNECTION_IDLE_TIMEOUT": "5s",
}
HEADER_READ_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
SEND_TIMEOUT = 3.0
IDLE_TIMEOUT = 5.0
ENDING_GRACE = 1.0  # connection.rs: a connection asked to close is dropped after this
SHUTDOWN_TIMEOUT = 10.0  # the default, not shortened

SEED_NOTES = 1500
SEED_BODY = 1000  # bytes per note: GET /notes is about 1.5 MB

T0 = time.monotonic()


def log(msg):
    print(f"[attacks {time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def now():
    return time.monotonic()


# ---------------------------------------------------------------------------------------------
# Bookkeeping: every socket and process is registered, and closed in `cleanup`.

SOCKETS = set()
SOCKETS_LOCK = threading.Lock()
SERVERS = []
STOP = threading.Event()  # tells every helper thread to end


def connect(port, timeout=5.0, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with SOCKETS_LOCK:
        SOCKETS.add(s)
    try:
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        s.connect((HOST, port))
    except BaseException:
        close(s)
        raise
    return s


def close(s):
    with SOCKETS_LOCK:
        SOCKETS.discard(s)
    try:
        s.close()
    except OSError:
        pass


def close_all_sockets():
    with SOCKETS_LOCK:
        socks = list(SOCKETS)
        SOCKETS.clear()
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------
# The server under test.

def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """One `notes` process, its log lines timestamped as they arrive."""

    def __init__(self, binary, db, name, nofile=None):
        self.binary, self.db, self.name, self.nofile = binary, db, name, nofile
        self.port = free_port()
        self.proc = None
        self.lines = []  # (monotonic time, line)
        self.lines_lock = threading.Lock()
        self.expected_exit = False
        self.sigterm_at = None
        self.reader = None

    def start(self, logdir):
        env = dict(os.environ)
        env.update(SETTINGS)
        env.update({"INTRALB_ADDR": f"{HOST}:{self.port}", "NOTES_DB": str(self.db),
                    # Connection events at debug: the table says why each connection closed.
                    "RUST_LOG": "info,intralb::connection=debug,intralb::send=debug"})
        argv = [str(self.binary)]
        if self.nofile:
            # A shell sets the limit and execs the server (same pid); no preexec_fn, which is
            # unsafe with threads running.
            argv = ["bash", "-c", f"ulimit -n {self.nofile} && exec \"$0\"", str(self.binary)]
        self.logfile = open(Path(logdir) / f"{self.name}.log", "w")
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        SERVERS.append(self)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = now() + 30
        while now() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start: {self.proc.returncode}; "
                                   f"log: {self.log_text()[-2000:]}")
            try:
                if http1(self.port, "GET", "/healthz", timeout=2)[0] == 200:
                    log(f"{self.name}: pid {self.proc.pid}, http://{HOST}:{self.port}")
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not answer /healthz within 30s")

    def _read(self):
        for raw in self.proc.stdout:  # ends when the process (and its pipe) closes
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.lines_lock:
                self.lines.append((now(), line))
            self.logfile.write(line + "\n")
        self.logfile.flush()

    def log_text(self):
        with self.lines_lock:
            return "\n".join(line for _, line in self.lines)

    def find_line(self, needle, after=0.0):
        with self.lines_lock:
            for t, line in self.lines:
                if t >= after and needle in line:
                    return t, line
        return None

    def close_reasons(self, ports, since):
        """Why the server closed each of these client connections, from its debug log:
        {client port: reason}."""
        causes = [("closing an idle connection", "idle (connection_idle_timeout)"),
                  ("for send_timeout", "send_timeout"),  # "made no progress" / "read nothing"
                  ("closing a connection that sent nothing", "sent nothing"),
                  ("aborted at the shutdown deadline", "shutdown deadline"),
                  ("connection ended with an error", None)]
        reasons = {}
        with self.lines_lock:
            lines = [line for t, line in self.lines if t >= since and "peer=" in line]
        for line in lines:
            try:
                port = int(line.split("peer=", 1)[1].split()[0].rsplit(":", 1)[1])
            except (IndexError, ValueError):
                continue
            if port not in ports or port in reasons:
                continue
            for needle, reason in causes:
                if needle in line:
                    if needle == "closing an idle connection" and "requests=0" in line:
                        reason = "no request in time (header_read_timeout)"
                    if reason is None:
                        error = line.split("error=", 1)[1] if "error=" in line else "?"
                        reason = f"error: {error.strip()}"
                    reasons[port] = reason
                    break
        return reasons

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_mb(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def cpu_s(self):
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            # utime and stime are fields 14 and 15 of stat; 12 and 13 after the ")".
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError):
            return float("nan")

    def nofile_limit(self):
        try:
            with open(f"/proc/{self.pid}/limits") as f:
                for line in f:
                    if line.startswith("Max open files"):
                        return line.split()[3]
        except OSError:
            pass
        return "?"

    def crashed(self):
        """Why this server counts as crashed, or None."""
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None:
            return None
        if not self.expected_exit:
            return f"{self.name} exited by itself with status {rc}"
        if rc != 0:
            return f"{self.name} exited with status {rc} after SIGTERM"
        return None

    def terminate(self, wait=SHUTDOWN_TIMEOUT + 5):
        """SIGTERM, then SIGKILL if it has not exited within `wait` seconds; returns the status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.expected_exit = True
            self.sigterm_at = now()
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                log(f"{self.name}: no exit {wait}s after SIGTERM; SIGKILL")
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.reader:
            self.reader.join(timeout=5)
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.expected_exit = True
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


def server_sockets(port, client_ports):
    """Server-side sockets of these client connections, from /proc/net/tcp: {client port: bytes
    in the send queue} for those the server still holds (an inode: an open descriptor)."""
    held = {}
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                local, remote, inode = parts[1], parts[2], parts[9]
                if int(local.split(":")[1], 16) != port:
                    continue
                rport = int(remote.split(":")[1], 16)
                if rport in client_ports and inode != "0":
                    held[rport] = int(parts[4].split(":")[0], 16)
    except OSError:
        pass
    return held


# ---------------------------------------------------------------------------------------------
# HTTP/1 by hand.

def parse_responses(buf):
    """The HTTP/1 responses in `buf` (pipelined), as (status, headers, complete)."""
    out = []
    for _ in range(100):
        i = buf.find(b"\r\n\r\n")
        if i < 0:
            break
        lines = buf[:i].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            break
        status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        rest = buf[i + 4:]
        complete = True
        if status < 200 or status in (204, 304):
            pass
        elif "content-length" in headers:
            n = int(headers["content-length"])
            complete = len(rest) >= n
            rest = rest[n:]
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            complete = False
            for _ in range(100000):
                j = rest.find(b"\r\n")
                if j < 0:
                    break
                size = int(rest[:j].split(b";")[0] or b"0", 16)
                if size == 0:
                    k = rest.find(b"\r\n\r\n", j)
                    if k >= 0:
                        rest, complete = rest[k + 4:], True
                    break
                if len(rest) < j + 2 + size + 2:
                    break
                rest = rest[j + 2 + size + 2:]
        else:
            rest = b""  # body until close
        out.append((status, headers, complete))
        if not complete:
            break
        buf = rest
    return out


def http1(port, method, path, body=None, timeout=10.0):
    """One request on a new connection (Connection: close); (status, bytes received)."""
    deadline = now() + timeout
    s = connect(port, timeout=timeout)
    try:
        head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        s.sendall(head.encode() + b"\r\n" + (body or b""))
        buf = bytearray()
        for _ in range(1_000_000):
            left = deadline - now()
            if left <= 0:
                raise TimeoutError("no complete response")
            s.settimeout(left)
            chunk = s.recv(262144)
            if not chunk:
                break
            buf += chunk
        responses = parse_responses(bytes(buf))
        if not responses:
            raise ConnectionError("closed without a response")
        return responses[0][0], len(buf)
    finally:
        close(s)


def read_response(s, buf, deadline):
    """Reads one response from a keep-alive connection: (status, headers, leftover); status None
    if the connection closed first."""
    for _ in range(100000):
        responses = parse_responses(bytes(buf))
        if responses and responses[0][2]:
            status, headers, _ = responses[0]
            # Recompute where it ended: the head plus its Content-Length.
            i = buf.find(b"\r\n\r\n")
            n = int(headers.get("content-length", "0"))
            headers["_body"] = bytes(buf[i + 4:i + 4 + n])
            return status, headers, buf[i + 4 + n:]
        left = deadline - now()
        if left <= 0:
            raise TimeoutError("no complete response")
        s.settimeout(left)
        chunk = s.recv(65536)
        if not chunk:
            return None, {}, b""
        buf += chunk
    raise RuntimeError("unbounded response")


# ---------------------------------------------------------------------------------------------
# HTTP/2 by hand.

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS_F, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
SETTINGS_HEADER_TABLE_SIZE, SETTINGS_INITIAL_WINDOW_SIZE = 0x1, 0x4
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream & 0x7FFFFFFF) + payload


def settings_frame(pairs=(), ack=False):
    return frame(SETTINGS_F, ACK if ack else 0, 0,
                 b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def hpack_int(value, prefix_bits, flags):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([flags | value])
    out = [flags | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_literal(name_index, value):
    """Literal header field without indexing, name from the static table, raw (no Huffman)."""
    return hpack_int(name_index, 4, 0x00) + hpack_int(len(value), 7, 0x00) + value


def get_headers(stream, path, authority):
    # Static table: 2 = :method GET, 6 = :scheme http, 4 = :path, 1 = :authority.
    block = b"\x82\x86" + hpack_literal(4, path.encode()) + hpack_literal(1, authority.encode())
    return frame(HEADERS, END_STREAM | END_HEADERS, stream, block)


def hpack_read_int(data, pos, prefix_bits):
    limit = (1 << prefix_bits) - 1
    value = data[pos] & limit
    pos += 1
    if value < limit:
        return value, pos
    shift = 0
    while pos < len(data):
        b = data[pos]
        pos += 1
        value += (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    return value, pos


def huffman_digits(data):
    """Decodes a Huffman-coded string of digits (RFC 7541 Appendix B: '0'-'2' are 5 bits,
    '3'-'9' 6 bits); None if it holds anything else."""
    bits = "".join(f"{b:08b}" for b in data)
    out, i = [], 0
    while i < len(bits):
        rest = bits[i:]
        if len(rest) < 8 and set(rest) <= {"1"}:
            break  # padding
        if len(rest) >= 5 and int(rest[:5], 2) <= 2:
            out.append(str(int(rest[:5], 2)))
            i += 5
        elif len(rest) >= 6 and 0x19 <= int(rest[:6], 2) <= 0x1F:
            out.append(str(int(rest[:6], 2) - 0x19 + 3))
            i += 6
        else:
            return None
    return "".join(out)


STATIC_STATUS = {8: "200", 9: "204", 10: "206", 11: "304", 12: "400", 13: "404", 14: "500"}


def hpack_status(block):
    """The :status of a response header block, given that we told the server not to use a
    dynamic table (SETTINGS_HEADER_TABLE_SIZE = 0)."""
    try:
        pos = 0
        while pos < len(block) and block[pos] & 0xE0 == 0x20:  # dynamic table size update
            _, pos = hpack_read_int(block, pos, 5)
        b = block[pos]
        if b & 0x80:
            index, _ = hpack_read_int(block, pos, 7)
            return STATIC_STATUS.get(index, f"index {index}")
        prefix = 6 if b & 0x40 else 4
        index, pos = hpack_read_int(block, pos, prefix)
        if index != 8:
            return "?"
        huffman = bool(block[pos] & 0x80)
        length, pos = hpack_read_int(block, pos, 7)
        value = block[pos:pos + length]
        return (huffman_digits(value) if huffman else value.decode()) or "?"
    except (IndexError, UnicodeDecodeError):
        return "?"


def h2_frames(buf):
    """Complete frames at the front of `buf`: a list of (type, flags, stream, payload), and the
    number of bytes they took."""
    frames, pos = [], 0
    while len(buf) - pos >= 9:
        length = int.from_bytes(buf[pos:pos + 3], "big")
        if len(buf) - pos < 9 + length:
            break
        ftype, flags = buf[pos + 3], buf[pos + 4]
        stream = int.from_bytes(buf[pos + 5:pos + 9], "big") & 0x7FFFFFFF
        frames.append((ftype, flags, stream, bytes(buf[pos + 9:pos + 9 + length])))
        pos += 9 + length
    return frames, pos


def header_block(flags, payload):
    pos, end = 0, len(payload)
    if flags & 0x8:  # PADDED
        end -= payload[0]
        pos = 1
    if flags & 0x20:  # PRIORITY
        pos += 5
    return payload[pos:end]


# ---------------------------------------------------------------------------------------------
# Figures.

def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


def ms(seconds):
    return f"{seconds * 1000:.1f} ms" if seconds == seconds else "n/a"


def secs(seconds):
    return f"{seconds:.1f} s" if seconds == seconds else "n/a"


def counts(items):
    out = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return ", ".join(f"{n} × {k}" for k, n in sorted(out.items(), key=lambda kv: -kv[1]))


class Legit(threading.Thread):
    """The legitimate client: a new connection per request, alternately GET /notes/<id> and a
    small POST /notes, one every 50 ms, each with a 10 s timeout."""

    def __init__(self):
        super().__init__(daemon=True)
        self.port = None
        self.records = []  # (start, kind, status or error name, latency)
        self.lock = threading.Lock()
        self.paused = threading.Event()

    def run(self):
        rng = random.Random(9)
        for i in range(200_000):
            if STOP.is_set():
                return
            if self.paused.is_set() or self.port is None:
                time.sleep(0.05)
                continue
            kind = "GET" if i % 2 == 0 else "POST"
            start = now()
            try:
                if kind == "GET":
                    status, _ = http1(self.port, "GET", f"/notes/{rng.randint(1, SEED_NOTES)}")
                else:
                    status, _ = http1(self.port, "POST", "/notes", b'{"body":"legit"}')
            except OSError as e:
                status = type(e).__name__
            except Exception as e:  # a malformed answer: counted, not fatal
                status = type(e).__name__
            with self.lock:
                self.records.append((start, kind, status, now() - start))
            time.sleep(0.05)

    def summary(self, t0, t1):
        """(text, whether every request succeeded, {kind: p50 of the successful ones})."""
        with self.lock:
            recs = [r for r in self.records if t0 <= r[0] < t1]
        parts, p50s = [], {}
        for kind, ok in (("GET", 200), ("POST", 201)):
            rs = [r for r in recs if r[1] == kind]
            good = [r[3] for r in rs if r[2] == ok]
            bad = [str(r[2]) for r in rs if r[2] != ok]
            text = f"{kind} {len(good)}/{len(rs)} ok"
            if bad:
                text += f" (failed: {counts(bad)})"
            if good:
                text += f", p50 {ms(pct(good, 50))}, p99 {ms(pct(good, 99))}"
                p50s[kind] = pct(good, 50)
            parts.append(text)
        all_ok = bool(recs) and all(r[2] in (200, 201) for r in recs)
        return "legitimate: " + "; ".join(parts), all_ok, p50s


BASELINE = {}  # kind -> the legitimate client's p50 without an attack


def legit_verdict(ok, p50s):
    """A clause on the legitimate client's fate, against the baseline."""
    if not ok:
        return "; **legitimate requests failed meanwhile** (see figures)"
    slow = [f"{kind} p50 {ms(v)} (baseline {ms(BASELINE[kind])})" for kind, v in p50s.items()
            if kind in BASELINE and v > max(3 * BASELINE[kind], BASELINE[kind] + 0.010)]
    if slow:
        return "; **legitimate requests slowed**: " + ", ".join(slow)
    return "; legitimate requests unaffected"


# ---------------------------------------------------------------------------------------------
# The attacks. Each returns a row: (attack, what the server did, figures).

def attack_baseline(srv, legit):
    log("baseline: the legitimate client alone, 5 s")
    cpu0, t0 = srv.cpu_s(), now()
    time.sleep(5)
    t1 = now()
    cpu = srv.cpu_s() - cpu0
    text, _, p50s = legit.summary(t0, t1)
    BASELINE.update(p50s)
    return ("(baseline) no attack, 5 s", "—",
            f"{text}; server CPU {cpu:.2f} s in {t1 - t0:.0f} s; RSS {srv.rss_mb():.0f} MB")


def attack_slow_bodies(srv, legit, n, duration, declared, label):
    """n connections POST /notes declaring `declared` bytes and sending one a second; each that
    the server ends is replaced at once, for `duration` seconds."""
    log(f"{label}: {n} slow-body connections (Content-Length {declared}, 1 byte/s), {duration} s")
    head = (f"POST /notes HTTP/1.1\r\nHost: {HOST}:{srv.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n").encode()
    sel = selectors.DefaultSelector()
    conns = {}
    ended = []  # (seconds from head sent to first response byte or None, to close, status)
    opened = 0
    max_opens = n * (duration + 5)

    def open_one():
        nonlocal opened
        opened += 1
        s = connect(srv.port)
        s.sendall(head)
        s.setblocking(False)
        st = {"start": now(), "sent": 0, "buf": bytearray(), "first": None}
        conns[s] = st
        sel.register(s, selectors.EVENT_READ, st)

    def end(s, st):
        sel.unregister(s)
        del conns[s]
        responses = parse_responses(bytes(st["buf"]))
        status = str(responses[0][0]) if responses else "closed, no answer"
        if responses and responses[0][1].get("connection", "").lower() == "close":
            status += " + Connection: close"
        first = st["first"] - st["start"] if st["first"] else None
        ended.append((first, now() - st["start"], status))
        close(s)

    cpu0, t0 = srv.cpu_s(), now()
    try:
        for _ in range(n):
            open_one()
        next_tick = now() + 1
        for _ in range(10_000_000):
            t = now()
            if t >= t0 + duration:
                break
            for key, _ in sel.select(timeout=max(0.0, min(next_tick, t0 + duration) - t)):
                s, st = key.fileobj, key.data
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if data:
                    st["first"] = st["first"] or now()
                    st["buf"] += data
                else:
                    end(s, st)
                    if now() < t0 + duration and opened < max_opens:
                        open_one()
            if now() >= next_tick:
                next_tick += 1
                for s, st in list(conns.items()):
                    if st["sent"] < declared:
                        try:
                            s.send(b"x")
                            st["sent"] += 1
                        except OSError:
                            end(s, st)
                            if opened < max_opens:
                                open_one()
        t1 = now()
        cpu = srv.cpu_s() - cpu0
        still_open = len(conns)
    finally:
        for s in list(conns):
            sel.unregister(s)
            close(s)
        conns.clear()
        sel.close()
    legit_text, legit_ok, p50s = legit.summary(t0, t1)
    to_close = [e[1] for e in ended]
    to_first = [e[0] for e in ended if e[0] is not None]
    statuses = counts(e[2] for e in ended)
    all_408 = ended and all(e[2].startswith("408 + Connection: close") for e in ended)
    if all_408 and pct(to_close, 100) <= BODY_TIMEOUT + 1:
        did = (f"answered every slow body `408` + `Connection: close` at body_timeout "
               f"({BODY_TIMEOUT:.0f} s) and closed it")
    else:
        did = f"ended the slow bodies with {statuses or 'nothing'}"
    budget = 65536 * (int(SETTINGS["INTRALB_MAX_CONCURRENT"]) + int(SETTINGS["INTRALB_QUEUE"]))
    verdict = legit_verdict(legit_ok, p50s)
    post_slowed = "POST p50" in verdict or not legit_ok
    if n * declared > budget and ("503" in statuses or post_slowed):
        did += (f"; the attackers' declared bodies ({n} × {declared // 1024} KiB) exceed the "
                f"body budget, buffer_body × (max_concurrent + queue) = {budget // 1024} KiB: "
                f"other bodies waited for room (`503` if none came within body_timeout)")
    did += verdict
    figures = (f"{legit_text}; server CPU {cpu:.2f} s in {t1 - t0:.0f} s "
               f"({100 * cpu / (t1 - t0):.0f}% of one core); {len(ended)} slow connections "
               f"ended by the server ({statuses}), answer after p50 {secs(pct(to_first, 50))} / "
               f"max {secs(pct(to_first, 100))}, closed after p50 {secs(pct(to_close, 50))} / "
               f"max {secs(pct(to_close, 100))}; {opened} opened in all, {still_open} still "
               f"trickling when the attack stopped; RSS {srv.rss_mb():.0f} MB")
    return (label, did, figures)


def attack_short_body(srv, legit):
    log("b: Content-Length 100, 12 bytes, silence")
    s = connect(srv.port, timeout=15)
    try:
        t0 = now()
        s.sendall((f"POST /notes HTTP/1.1\r\nHost: {HOST}:{srv.port}\r\n"
                   "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n").encode()
                  + b'{"body":"sho')
        buf, first, closed = bytearray(), None, None
        for _ in range(100000):
            left = t0 + 15 - now()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                data = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                data = b""
            if not data:
                closed = now() - t0
                break
            first = first or now() - t0
            buf += data
    finally:
        close(s)
    responses = parse_responses(bytes(buf))
    if responses:
        status, headers, _ = responses[0]
        answer = f"`{status}`" + (" + `Connection: close`"
                                  if headers.get("connection", "").lower() == "close" else "")
    else:
        answer = "no answer"
    closes = f"closed the connection {secs(closed)} after the body began" if closed else \
        "did **not** close the connection within 15 s"
    did = f"answered {answer} {secs(first) if first else ''} after the head, {closes}"
    if not (responses and responses[0][0] == 408 and closed and closed <= BODY_TIMEOUT + 1):
        did += " (README: `408` + close at body_timeout)"
    return ("b. short body: Content-Length 100, 12 bytes sent, then silence", did,
            f"answer after {secs(first) if first else 'n/a'}, close after "
            f"{secs(closed) if closed else '> 15 s'} (body_timeout {BODY_TIMEOUT:.0f} s)")


def attack_stuck_h2(srv, legit):
    """Connections stuck before their first request, four groups at once."""
    groups = [
        ("preface byte by byte, 1 byte/s", 200, "slow"),
        ("`PRI * HTTP/2` only", 50, b"PRI * HTTP/2"),
        ("full preface + SETTINGS, then nothing", 50, PREFACE + settings_frame()),
        ("(extra) HTTP/1 head byte by byte, 1 byte/s", 50, "slowh1"),
    ]
    log("c: " + ", ".join(f"{n} × {name}" for name, n, _ in groups))
    slow_h1 = f"GET /notes/1 HTTP/1.1\r\nHost: {HOST}:{srv.port}\r\nX-Padding: {'p' * 100}\r\n".encode()
    sel = selectors.DefaultSelector()
    conns = {}
    cap = 30
    t0 = now()
    cpu0 = srv.cpu_s()
    try:
        for gi, (name, n, what) in enumerate(groups):
            for _ in range(n):
                s = connect(srv.port)
                st = {"group": gi, "start": now(), "sent": 0, "closed": None, "goaway": None,
                      "buf": bytearray(), "how": None, "port": s.getsockname()[1]}
                if isinstance(what, bytes):
                    s.sendall(what)
                s.setblocking(False)
                conns[s] = st
                sel.register(s, selectors.EVENT_READ, st)
        open_left = len(conns)
        next_tick = now()
        for _ in range(10_000_000):
            t = now()
            if t >= t0 + cap or open_left == 0:
                break
            if t >= next_tick:
                next_tick += 1
                for s, st in conns.items():
                    if st["closed"] is not None:
                        continue
                    kind = groups[st["group"]][2]
                    data = PREFACE if kind == "slow" else slow_h1 if kind == "slowh1" else None
                    if data is not None and st["sent"] < len(data):
                        try:
                            s.send(data[st["sent"]:st["sent"] + 1])
                            st["sent"] += 1
                        except OSError as e:
                            st["closed"], st["how"] = now() - st["start"], type(e).__name__
                            sel.unregister(s)
                            open_left -= 1
            for key, _ in sel.select(timeout=max(0.0, min(next_tick, t0 + cap) - now())):
                s, st = key.fileobj, key.data
                try:
                    data = s.recv(65536)
                    how = "EOF"
                except OSError as e:
                    data, how = b"", type(e).__name__
                if data:
                    st["buf"] += data
                    if st["goaway"] is None and st["group"] == 2:  # a real HTTP/2 connection
                        frames, _ = h2_frames(st["buf"])
                        if any(f[0] == GOAWAY for f in frames):
                            st["goaway"] = now() - st["start"]
                else:
                    st["closed"], st["how"] = now() - st["start"], how
                    sel.unregister(key.fileobj)
                    open_left -= 1
        t1 = now()
        cpu = srv.cpu_s() - cpu0
    finally:
        for s in list(conns):
            close(s)
        sel.close()
    legit_text, legit_ok, p50s = legit.summary(t0, t1)
    did_parts, fig_parts, bad = [], [], False
    for gi, (name, n, what) in enumerate(groups):
        sts = [st for st in conns.values() if st["group"] == gi]
        closed = [st["closed"] for st in sts if st["closed"] is not None]
        goaways = [st["goaway"] for st in sts if st["goaway"] is not None]
        answers = [parse_responses(bytes(st["buf"])) for st in sts]
        answered = counts(str(a[0][0]) for a in answers if a)
        hows = counts(st["how"] for st in sts if st["how"])
        reasons = srv.close_reasons({st["port"] for st in sts}, t0)
        why = counts(reasons.get(st["port"], "not logged") for st in sts
                     if st["closed"] is not None)
        expected = HEADER_READ_TIMEOUT + ENDING_GRACE + 1
        if len(closed) == n and pct(closed, 100) <= expected:
            did_parts.append(f"{name}: all {n} closed after {secs(pct(closed, 50))}")
        elif len(closed) == n:
            bad = True
            did_parts.append(f"{name}: all {n} closed, but the last only after "
                             f"{secs(pct(closed, 100))} (README: header_read_timeout, "
                             f"{HEADER_READ_TIMEOUT:.0f} s)")
        else:
            bad = True
            did_parts.append(f"{name}: **{n - len(closed)} of {n} still open after {cap} s** "
                             f"(README: closed at header_read_timeout, {HEADER_READ_TIMEOUT:.0f} s)")
        fig = (f"{name}: {len(closed)}/{n} closed, after p50 {secs(pct(closed, 50))} / max "
               f"{secs(pct(closed, 100))} ({hows or 'none'}; server log: {why or 'none'})")
        if goaways:
            fig += f", GOAWAY to {len(goaways)} after p50 {secs(pct(goaways, 50))}"
        if answered:
            fig += f", answered {answered}"
        fig_parts.append(fig)
    did = "; ".join(did_parts) + legit_verdict(legit_ok, p50s)
    return ("c. connections stuck before their first request (all groups at once)", did,
            "; ".join(fig_parts) + f"; {legit_text}; server CPU {cpu:.2f} s in {t1 - t0:.0f} s")


def attack_h2_nonreader(srv, legit, rnd, streams=50, after=10):
    """One HTTP/2 connection, INITIAL_WINDOW_SIZE = 0, `streams` GET /notes, never a
    WINDOW_UPDATE. Control frames are read (to see RST_STREAM), SETTINGS and PING are
    acknowledged, as any HTTP/2 library would, but no DATA can flow."""
    log(f"d{rnd}: HTTP/2 non-reader, {streams} × GET /notes with a 0 window")
    rss_before = srv.rss_mb()
    peak = rss_before
    s = connect(srv.port)
    opened = {}  # stream id -> open time
    status = {}  # stream id -> (status, time)
    reset = {}  # stream id -> (error code, time)
    data_bytes = 0
    goaway = closed = None
    t0 = now()
    try:
        s.sendall(PREFACE + settings_frame([(SETTINGS_HEADER_TABLE_SIZE, 0),
                                            (SETTINGS_INITIAL_WINDOW_SIZE, 0)]))
        s.setblocking(False)
        buf = bytearray()
        next_id = 1
        last_event = None
        for _ in range(1_000_000):
            t = now()
            if t - t0 > 60:
                break
            # Four requests waiting for their response head at most, as max_concurrent is 4.
            waiting = [i for i in opened if i not in status and i not in reset]
            if len(opened) < streams and len(waiting) < 4 and closed is None:
                s.sendall(get_headers(next_id, "/notes", f"{HOST}:{srv.port}"))
                opened[next_id] = now()
                next_id += 2
                continue
            done = len(opened) == streams and all(i in reset for i in opened)
            if last_event and (done or closed is not None) and t - last_event >= after:
                break
            if last_event is None and (done or closed is not None):
                last_event = t
            if len(opened) == streams and last_event is None and t - t0 > 30:
                last_event = t  # streams not reset within 30 s: observe `after` s more, stop
            if closed is not None:  # nothing more to read: watch the RSS
                time.sleep(0.1)
                peak = max(peak, srv.rss_mb())
                continue
            ready, _, _ = select_read(s, 0.1)
            peak = max(peak, srv.rss_mb())
            if not ready:
                continue
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                closed = now() - t0
                if last_event is None:
                    last_event = now()
                continue
            buf += chunk
            frames, used = h2_frames(buf)
            del buf[:used]
            for ftype, flags, sid, payload in frames:
                if ftype == SETTINGS_F and not flags & ACK:
                    s.sendall(settings_frame(ack=True))
                elif ftype == PING and not flags & ACK:
                    s.sendall(frame(PING, ACK, 0, payload))
                elif ftype == HEADERS and sid in opened and sid not in status:
                    status[sid] = (hpack_status(header_block(flags, payload)), now())
                elif ftype == RST_STREAM:
                    reset[sid] = (int.from_bytes(payload[:4], "big"), now())
                elif ftype == DATA:
                    data_bytes += len(payload)
                elif ftype == GOAWAY and goaway is None:
                    goaway = now() - t0
    finally:
        close(s)
    rss_after = srv.rss_mb()
    t1 = now()
    legit_text, legit_ok, p50s = legit.summary(t0, t1)
    codes = counts(v[0] for v in status.values())
    reset_after = [reset[i][1] - status[i][1] for i in reset if i in status]
    reset_codes = counts({0: "NO_ERROR", 8: "CANCEL", 2: "INTERNAL_ERROR"}.get(v[0], str(v[0]))
                         for v in reset.values())
    n_reset = sum(1 for i in opened if i in reset)
    if n_reset == len(opened) and reset_after and pct(reset_after, 100) <= 1.5 * SEND_TIMEOUT + 1:
        did = (f"reset every stream (RST_STREAM {reset_codes}) {secs(pct(reset_after, 50))} "
               f"after its response head, {pct(reset_after, 50) / SEND_TIMEOUT:.1f} × "
               f"send_timeout ({SEND_TIMEOUT:.0f} s; README: reset after send_timeout without "
               f"progress, send.rs: after 1 to 1.5 × it)")
    elif n_reset == len(opened):
        did = (f"reset every stream, but late: up to {secs(pct(reset_after, 100))} after its "
               f"head (README: send_timeout {SEND_TIMEOUT:.0f} s to 1.5 × that)")
    else:
        did = (f"**{len(opened) - n_reset} of {len(opened)} streams never reset** "
               f"(README: reset after send_timeout, {SEND_TIMEOUT:.0f} s)")
    did += (f"; RSS rose {peak - rss_before:.0f} MB while the streams were held and was "
            f"{rss_after - rss_before:+.0f} MB from where it started {after} s after the resets")
    did += legit_verdict(legit_ok, p50s)
    figures = (f"{len(opened)} streams, response heads {codes or 'none'}; RSS {rss_before:.0f} MB "
               f"before, {peak:.0f} MB peak, {rss_after:.0f} MB {after} s after the last reset; "
               f"RST_STREAM after p50 {secs(pct(reset_after, 50))} / max "
               f"{secs(pct(reset_after, 100))}; {data_bytes} DATA bytes received"
               + (f"; GOAWAY {secs(goaway)} after connecting" if goaway else "")
               + (f"; connection closed {secs(closed)} after connecting" if closed else
                  "; connection still open when the client left")
               + f"; {legit_text}")
    return (f"d{rnd}. HTTP/2 client that never reads: SETTINGS_INITIAL_WINDOW_SIZE = 0, "
            f"{streams} × GET /notes" + (" (again, same server)" if rnd > 1 else ""),
            did, figures)


def select_read(s, timeout):
    sel = selectors.DefaultSelector()
    try:
        sel.register(s, selectors.EVENT_READ)
        ready = sel.select(timeout)
        return ([s] if ready else []), [], []
    finally:
        sel.close()


def tcp_mem_mb():
    """The kernel's TCP buffer memory, machine-wide (/proc/net/sockstat, in pages)."""
    try:
        with open("/proc/net/sockstat") as f:
            for line in f:
                if line.startswith("TCP:"):
                    parts = line.split()
                    return int(parts[parts.index("mem") + 1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        pass
    return float("nan")


def attack_h1_nonreaders(srv, legit, n, pipeline, label, observe=25):
    """n connections send `pipeline` × GET /notes and never read. Their receive buffer is small
    (SO_RCVBUF 4 KiB), as a deliberate attacker would make it; the server's kernel still takes up
    to tcp_wmem's maximum (4 MB by default) of each response before hyper has to wait."""
    log(f"{label.split('.')[0]}: {n} HTTP/1 clients that never read, {pipeline} × GET /notes each")
    rss_before, kmem_before = srv.rss_mb(), tcp_mem_mb()
    peak, kmem_peak = rss_before, kmem_before
    socks = []
    heads = {}  # client port -> (status, time)
    request = f"GET /notes HTTP/1.1\r\nHost: {HOST}:{srv.port}\r\n\r\n".encode() * pipeline
    size = http1(srv.port, "GET", "/notes", timeout=30)[1]  # the legitimate POSTs grow it
    t0 = now()

    def peek_heads():
        for s in socks:
            p = s.getsockname()[1]
            if p in heads:
                continue
            try:
                peek = s.recv(16, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError:
                peek = b""
            heads[p] = (peek[9:12].decode("latin-1") if peek else "closed", now())

    try:
        for _ in range(100_000):
            if len(socks) == n or now() - t0 > 20:
                break
            peek_heads()
            if len(socks) - len(heads) >= 4:  # max_concurrent: do not make them 503s
                time.sleep(0.01)
                continue
            s = connect(srv.port, rcvbuf=4096)
            s.sendall(request)
            s.setblocking(False)  # so that a peek never waits
            socks.append(s)
        ports = {s.getsockname()[1] for s in socks}
        released = {}  # client port -> time the server let go of its socket
        queued = {}  # client port -> (bytes in the server's send queue, when it last grew)
        for _ in range(100_000):
            t = now()
            if t - t0 > observe:
                break
            peek_heads()
            held = server_sockets(srv.port, ports)
            for p in ports:
                if p not in held and p not in released:
                    released[p] = t
                if p in held and held[p] > queued.get(p, (0, 0))[0]:
                    queued[p] = (held[p], t)
            peak, kmem_peak = max(peak, srv.rss_mb()), max(kmem_peak, tcp_mem_mb())
            if len(released) == len(ports) and t - max(released.values()) >= 10:
                break
            time.sleep(0.1)
        rss_after, kmem_after = srv.rss_mb(), tcp_mem_mb()
        t_end = now()
        # Only now read what each client was sent, to see whether responses were cut short.
        got = {s: 0 for s in socks}
        endings = []
        pending = list(socks)
        deadline = now() + 10
        for _ in range(1_000_000):
            if not pending or now() > deadline:
                break
            for s in list(pending):
                try:
                    data = s.recv(1 << 20)
                except BlockingIOError:
                    continue
                except OSError as e:
                    endings.append(type(e).__name__)
                    pending.remove(s)
                    continue
                if not data:
                    endings.append("EOF")
                    pending.remove(s)
                else:
                    got[s] += len(data)
            time.sleep(0.002)
        endings += ["still open"] * len(pending)
    finally:
        for s in socks:
            close(s)
    received = list(got.values())
    reasons = srv.close_reasons(ports, t0)
    reason_text = counts(reasons.get(p, "not logged") for p in released) or "none"
    legit_text, legit_ok, p50s = legit.summary(t0, t_end)
    statuses = counts(v[0] for v in heads.values())
    let_go = [released[p] - heads[p][1] for p in released if p in heads]
    # How long after the server's last write the socket went: the send queue grows only when the
    # server writes, since the client reads nothing.
    after_write = [released[p] - queued[p][1] for p in released if p in queued]
    never = len(ports) - len(released)
    whole = pipeline * size
    complete = sum(1 for r in received if r >= whole * 0.99)
    if never:
        did = (f"**kept {never} of {len(ports)} connections open for the {observe} s "
               f"observed** (README: closed after send_timeout, {SEND_TIMEOUT:.0f} s)")
    elif complete == len(received):
        did = (f"nothing to cut: the kernel's socket buffers took each whole response "
               f"({whole / 1e6:.2f} MB; tcp_wmem's maximum here is "
               f"{tcp_wmem_max() / 2**20:.0f} MB), so the server finished writing it and the "
               f"connection, idle, was closed {secs(pct(let_go, 50))} after its head by the "
               f"keep-alive timeout (header_read_timeout {HEADER_READ_TIMEOUT:.0f} s); "
               f"send_timeout never came into play, and the unread bytes sat in kernel memory, "
               f"not in the process (closed by: {reason_text})")
    elif all(reasons.get(p) == "send_timeout" for p in released) and \
            pct(after_write, 100) <= 1.5 * SEND_TIMEOUT + 1:
        did = (f"cut {len(received) - complete} of {len(received)} connections short by "
               f"send_timeout, p50 {secs(pct(after_write, 50))} / max "
               f"{secs(pct(after_write, 100))} after the server's last write into each")
    else:
        did = (f"cut {len(received) - complete} of {len(received)} connections short, but "
               f"**not by send_timeout**: p50 {secs(pct(after_write, 50))} / max "
               f"{secs(pct(after_write, 100))} after the server's last write into each "
               f"(send_timeout {SEND_TIMEOUT:.0f} s; README: cut once a response makes no "
               f"progress for send_timeout); closed by: {reason_text}")
    did += legit_verdict(legit_ok, p50s)
    figures = (f"{len(socks)} connections, response heads {statuses}; server let go of its "
               f"socket p50 {secs(pct(let_go, 50))} / max {secs(pct(let_go, 100))} after the "
               f"first head, p50 {secs(pct(after_write, 50))} / max "
               f"{secs(pct(after_write, 100))} after its last write (send queue at most "
               f"{max((q[0] for q in queued.values()), default=0) / 1e6:.2f} MB); read afterwards, each client had been sent p50 "
               f"{pct(received, 50) / 1e6:.2f} MB / max {pct(received, 100) / 1e6:.2f} MB of "
               f"{whole / 1e6:.2f} MB ({counts(endings)}); closed by (server log): {reason_text}; server RSS {rss_before:.0f} MB before, "
               f"{peak:.0f} MB peak, {rss_after:.0f} MB 10 s after the last close; kernel TCP "
               f"memory (machine-wide) {kmem_before:.0f} MB before, {kmem_peak:.0f} MB peak, "
               f"{kmem_after:.0f} MB at the end; {legit_text}")
    return (label, did, figures)


def tcp_wmem_max():
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, ValueError, IndexError):
        return float("nan")


def attack_malformed(srv):
    log("h: malformed requests")
    host = f"Host: {HOST}:{srv.port}\r\n"
    cases = [
        ("bad chunk size (`zz`)",
         f"POST /notes HTTP/1.1\r\n{host}Content-Type: application/json\r\n"
         "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n".encode()),
        ("chunk size overflowing 64 bits",
         f"POST /notes HTTP/1.1\r\n{host}Content-Type: application/json\r\n"
         "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nhello\r\n0\r\n\r\n".encode()),
        ("1 MB header",
         f"GET /notes/1 HTTP/1.1\r\n{host}X-Big: ".encode() + b"a" * (1 << 20) + b"\r\n\r\n"),
        ("CL.TE smuggling: `Content-Length: 6` + `Transfer-Encoding: chunked`, body "
         "`0\\r\\n\\r\\nG` then `GET /notes/1`",
         f"POST /notes HTTP/1.1\r\n{host}Content-Type: application/json\r\nContent-Length: 6\r\n"
         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGGET /notes/1 HTTP/1.1\r\n".encode()
         + host.encode() + b"\r\n"),
        ("TE.CL smuggling: `Transfer-Encoding: chunked` + `Content-Length: 4`, a chunk holding "
         "a second request",
         f"POST /notes HTTP/1.1\r\n{host}Content-Type: application/json\r\nContent-Length: 4\r\n"
         "Transfer-Encoding: chunked\r\n\r\n".encode()
         + b"%x\r\n" % len(b"GET /notes/2 HTTP/1.1\r\nHost: x\r\n\r\n")
         + b"GET /notes/2 HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n"),
        ("two different Content-Lengths",
         f"POST /notes HTTP/1.1\r\n{host}Content-Type: application/json\r\nContent-Length: 16\r\n"
         "Content-Length: 5\r\n\r\n".encode() + b'{"body":"short"}'),
        ("`Transfer-Encoding: identity`",
         f"POST /notes HTTP/1.1\r\n{host}Content-Type: application/json\r\n"
         "Transfer-Encoding: identity\r\n\r\n".encode() + b'{"body":"x"}'),
    ]
    rows = []
    for name, raw in cases:
        s = connect(srv.port, timeout=5)
        buf, send_error, closed = bytearray(), None, False
        t0 = now()
        try:
            try:
                s.sendall(raw)
            except OSError as e:
                send_error = type(e).__name__
            for _ in range(10000):
                left = t0 + 5 - now()
                if left <= 0:
                    break
                s.settimeout(left)
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    break
                except OSError as e:
                    send_error = send_error or type(e).__name__
                    closed = True
                    break
                if not data:
                    closed = True
                    break
                buf += data
        finally:
            close(s)
        responses = parse_responses(bytes(buf))
        answer = " then ".join(f"`{r[0]}`" for r in responses) or "no answer"
        ending = "connection closed" if closed else "connection kept open (5 s)"
        if send_error:
            ending += f", {send_error} while sending"
        rows.append(f"{name}: {answer}, {ending} ({now() - t0:.2f} s)")
    alive = srv.alive()
    return ("h. malformed requests (one connection each)",
            ("answered as listed (a `2xx`, `404` or `422` means the request reached the "
             "router; `400`/`431` come from the HTTP layer), and stayed up" if alive
             else "**the server died**"),
            "; ".join(rows))


def attack_fd_exhaustion(binary, db, logdir):
    log("f: server restarted with `ulimit -n 256`; 400 connections stuck in the preface")
    srv = Server(binary, db, "notes-nofile256", nofile=256)
    srv.start(logdir)
    limit = srv.nofile_limit()
    fds_before = len(os.listdir(f"/proc/{srv.pid}/fd"))
    socks = []
    probes = []  # (start offset, latency, status)
    stuck_closed = {}
    try:
        t0 = now()
        for _ in range(400):
            s = connect(srv.port)
            s.sendall(b"PRI * HTTP/2.0\r\n")
            s.setblocking(False)
            socks.append(s)
        t_open = now() - t0
        fds_peak = len(os.listdir(f"/proc/{srv.pid}/fd"))
        sel = selectors.DefaultSelector()
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        done = threading.Event()

        def prober():
            for _ in range(1000):
                if done.is_set() or STOP.is_set():
                    return
                start = now()
                try:
                    status, _ = http1(srv.port, "GET", "/notes/1", timeout=30)
                except Exception as e:
                    status = type(e).__name__
                probes.append((start - t0, now() - start, status))
                time.sleep(0.25)

        probe_thread = threading.Thread(target=prober, daemon=True)
        probe_thread.start()
        for _ in range(1_000_000):
            if len(stuck_closed) == len(socks) or now() - t0 > 30:
                break
            for key, _ in sel.select(timeout=0.2):
                try:
                    data = key.fileobj.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    stuck_closed[key.fileobj] = now() - t0
                    sel.unregister(key.fileobj)
            fds_peak = max(fds_peak, len(os.listdir(f"/proc/{srv.pid}/fd")))
        time.sleep(1)
        done.set()
        probe_thread.join(timeout=35)
        sel.close()
        accept_errors = srv.log_text().count("accepting a connection failed")
    finally:
        for s in socks:
            close(s)
    crashed = not srv.alive()
    rc = srv.terminate()
    closes = sorted(stuck_closed.values())
    first = probes[0] if probes else None
    lat = [p[1] for p in probes]
    ok = [p for p in probes if p[2] == 200]
    # Batches: how many closed in each second.
    batches = {}
    for c in closes:
        batches[int(c)] = batches.get(int(c), 0) + 1
    try:
        max_conn = f"{int(limit) // 4 * 3} (¾ of {limit})"
    except ValueError:
        max_conn = "?"
    waves = sorted(batches.items())
    did = (f"held at most {fds_peak - fds_before} of them open (max_connections = {max_conn}), "
           f"the rest waiting in the kernel's backlog; closed them in {len(waves)} waves, "
           f"one per header_read_timeout, accepting more from the backlog each time; the new "
           f"client, queued behind them, was served after {secs(first[1]) if first else 'n/a'}")
    if len(closes) < len(socks):
        did += f"; **{len(socks) - len(closes)} of 400 stuck connections still open after 30 s**"
    if accept_errors:
        did += f"; **{accept_errors} accept errors logged** (EMFILE?)"
    if crashed:
        did += "; **the server died**"
    figures = (f"fd limit {limit}; 400 connected in {t_open:.2f} s; stuck connections closed "
               f"per second since the attack began: "
               + ", ".join(f"{k}–{k + 1} s: {v}" for k, v in sorted(batches.items()))
               + f"; all closed after {secs(closes[-1]) if len(closes) == len(socks) else '> 30 s'}"
               f"; new-client probes (GET /notes/1, a new connection each, one after another): "
               f"first served after {secs(first[1]) if first else 'n/a'} ({first[2] if first else ''}), "
               f"{len(ok)}/{len(probes)} ok, max {secs(pct(lat, 100))}; server fds "
               f"{fds_before} before, {fds_peak} peak; exit status {rc} on SIGTERM")
    return srv, ("f. fd exhaustion: fd limit 256, 400 connections stuck in the preface, "
                 "then a new client", did, figures)


def attack_drain(binary, db, logdir):
    log("g: 16 reconnecting clients; SIGTERM")
    srv = Server(binary, db, "notes-drain")
    srv.start(logdir)
    stop_at = [now() + 60]
    stats_lock = threading.Lock()
    stats = {"ok_before": 0, "ok_after": 0, "close_headers": 0, "refused": 0, "failed": [],
             "other_before": [], "other_after": [], "connections": 0, "failed_on": []}
    t_sig = [None]

    def client():
        s, buf, served = None, bytearray(), 0
        for _ in range(1_000_000):
            if now() >= stop_at[0] or STOP.is_set():
                break
            if s is None:
                try:
                    s = connect(srv.port, timeout=2)
                    buf, served = bytearray(), 0
                    with stats_lock:
                        stats["connections"] += 1
                except ConnectionRefusedError:
                    with stats_lock:
                        stats["refused"] += 1
                    time.sleep(0.01)
                    continue
                except OSError as e:
                    with stats_lock:
                        stats["failed"].append(f"connect: {type(e).__name__}")
                    time.sleep(0.01)
                    continue
            try:
                s.sendall(f"GET /notes/1 HTTP/1.1\r\nHost: {HOST}:{srv.port}\r\n\r\n".encode())
                status, headers, buf = read_response(s, buf, now() + 10)
            except OSError as e:
                status, headers = type(e).__name__, {}
            after = t_sig[0] is not None
            if status is None or not isinstance(status, int):
                with stats_lock:
                    stats["failed_on"].append((s.getsockname()[1], served))
            with stats_lock:
                if status == 200:
                    stats["ok_after" if after else "ok_before"] += 1
                elif status is None:
                    stats["failed"].append("connection closed without an answer"
                                           + (" (after SIGTERM)" if after else ""))
                elif isinstance(status, int):
                    kind = str(status)
                    if status == 503:  # the body says which kind
                        body = headers.get("_body", b"").decode("latin-1")
                        kind += " shed" if "queue is full" in body else \
                            " shutting down" if "shutting down" in body else " other"
                    stats["other_after" if after else "other_before"].append(kind)
                else:
                    stats["failed"].append(status + (" (after SIGTERM)" if after else ""))
                if headers.get("connection", "").lower() == "close":
                    stats["close_headers"] += 1
            served += 1
            if status != 200 or headers.get("connection", "").lower() == "close":
                close(s)
                s = None
        if s is not None:
            close(s)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(16)]
    for t in threads:
        t.start()
    time.sleep(3)
    with stats_lock:
        before = stats["ok_before"]
    srv.expected_exit = True
    t_sig[0] = srv.sigterm_at = now()
    srv.proc.send_signal(signal.SIGTERM)
    exit_at = None
    for _ in range(100_000):
        if srv.proc.poll() is not None:
            exit_at = now()
            break
        if now() - t_sig[0] > SHUTDOWN_TIMEOUT + 10:
            break
        time.sleep(0.005)
    stop_at[0] = now() + 1
    for t in threads:
        t.join(timeout=15)
    if exit_at is None:
        log("g: no exit; SIGKILL")
        srv.kill()
    srv.reader.join(timeout=5)
    rc = srv.proc.returncode
    line = srv.find_line("no longer accepting", after=t_sig[0])
    final = None
    for needle in ("shutdown complete", "was cut"):
        final = final or srv.find_line(needle, after=t_sig[0])
    to_line = line[0] - t_sig[0] if line else None
    to_exit = exit_at - t_sig[0] if exit_at else None
    fields = " ".join(w for w in final[1].split() if "=" in w) if final else ""
    did = (f"logged \"no longer accepting\" "
           f"{ms(to_line) + ' after SIGTERM' if to_line is not None else '**never**'}, and "
           + (f"exited with status {rc} {ms(to_exit)} after the signal" if to_exit is not None
              else f"**had not exited {SHUTDOWN_TIMEOUT + 10:.0f} s after the signal**"))
    reasons = srv.close_reasons({port for port, _ in stats["failed_on"]}, t_sig[0] - 5)
    lost = counts(("the first request on a new connection" if served == 0 else
                   "a later request on a kept-alive connection")
                  + f" (server log: {reasons.get(port, 'no line about the connection')})"
                  for port, served in stats["failed_on"])
    if stats["failed"]:
        did += (f"; **{len(stats['failed'])} requests got no answer** "
                f"({counts(stats['failed'])}): {lost}")
    figures = (f"SIGTERM → \"no longer accepting\": {ms(to_line) if to_line is not None else 'n/a'}; "
               f"→ exit: {ms(to_exit) if to_exit is not None else 'n/a'} (status {rc}); "
               f"last log line: {fields or (final[1] if final else 'none')}; clients (keep-alive "
               f"GET /notes/1, a new connection after `Connection: close` or a 503): "
               f"{before} ok in the 3 s before the signal (and "
               f"{counts(stats['other_before']) or 'no other answers'}: 16 clients exceed "
               f"max_concurrent + queue = 12), {stats['ok_after']} ok after it, "
               f"{stats['close_headers']} `Connection: close` answers, other answers after it: "
               f"{counts(stats['other_after']) or 'none'}; {stats['connections']} connections in "
               f"all; {stats['refused']} connects refused once the listener had closed; "
               f"requests with no answer: {len(stats['failed'])}")
    return srv, ("g. drain under reconnects: 16 clients reconnect as soon as they get "
                 "`Connection: close`, then SIGTERM", did, figures)


# ---------------------------------------------------------------------------------------------

BODY_SIZE = [0]


def build():
    log("building: cargo build --release --example notes")
    subprocess.run(["cargo", "build", "--release", "--example", "notes"], cwd=REPO, check=True,
                   stdout=sys.stderr)
    meta = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=REPO,
                          check=True, capture_output=True, text=True)
    binary = Path(json.loads(meta.stdout)["target_directory"]) / "release" / "examples" / "notes"
    if not binary.exists():
        raise RuntimeError(f"no binary at {binary}")
    return binary


def seed(srv):
    log(f"seeding {SEED_NOTES} notes of {SEED_BODY} bytes")
    import http.client
    conn = http.client.HTTPConnection(HOST, srv.port, timeout=10)
    try:
        for i in range(SEED_NOTES):
            body = json.dumps({"body": f"{i:06d} " + "n" * (SEED_BODY - 7)})
            for attempt in range(3):
                try:
                    conn.request("POST", "/notes", body, {"Content-Type": "application/json"})
                    r = conn.getresponse()
                    r.read()
                    if r.status != 201:
                        raise RuntimeError(f"seeding: POST /notes answered {r.status}")
                    break
                except (ConnectionError, http.client.HTTPException):
                    conn.close()  # the keep-alive connection idled out: a new one
                    if attempt == 2:
                        raise
    finally:
        conn.close()
    status, size = http1(srv.port, "GET", "/notes", timeout=30)
    if status != 200:
        raise RuntimeError(f"GET /notes answered {status}")
    BODY_SIZE[0] = size
    log(f"GET /notes: {size / 1e6:.2f} MB")


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or \
        str(os.cpu_count())
    distro = "?"
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    distro = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    rustc = subprocess.run(["rustc", "-V"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    # Changes to this script or to its output do not change the server measured.
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                            ":!bench/attacks.py", ":!docs/hostile-clients.md"], cwd=REPO,
                           capture_output=True, text=True).stdout.split("\n")
    dirty = [line[3:] for line in dirty if line.strip()]
    if dirty:
        commit += " with uncommitted changes to " + ", ".join(f"`{f}`" for f in dirty)
    return {"nproc": nproc, "cpu": model, "kernel": platform.release(), "distro": distro,
            "python": platform.python_version(), "rustc": rustc, "commit": commit or "unknown"}


def cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_doc(out, rows, info, elapsed, crashes):
    settings = ", ".join(f"`{k}={v}`" for k, v in SETTINGS.items())
    lines = [
        "# Hostile clients, measured",
        "",
        "Produced by `python3 bench/attacks.py` (Python 3 standard library only; rerun it to "
        "refresh this page). It builds the `notes` example in release mode, serves it on a free "
        "127.0.0.1 port with a temporary SQLite database seeded with "
        f"{SEED_NOTES} notes (`GET /notes` is {BODY_SIZE[0] / 1e6:.2f} MB), and runs each attack "
        "below while a legitimate client makes a request every 50 ms on a new connection, "
        "alternately `GET /notes/<id>` and a small `POST /notes`. Its success counts and "
        "latencies are for the attack's duration only. The timeouts are shortened so the run "
        f"takes minutes: {settings} (shutdown_timeout keeps its 10 s default; max_connections "
        "is ¾ of the fd limit), and `RUST_LOG=info,intralb::connection=debug,"
        "intralb::send=debug`, so that the server's log says why it closed each connection "
        "(the \"server log\" figures). The legitimate client is sequential: an answer that "
        "is slow delays its next request, so a slowed phase has fewer samples. The HTTP/1 "
        "non-readers set a 4 KiB receive buffer. The attackers, the legitimate client and the "
        "server share the machine, so the latencies include the attackers' CPU.",
        "",
        f"Machine: {info['nproc']} CPUs (`nproc`), {info['cpu']}, Linux {info['kernel']}, "
        f"{info['distro']}; {info['rustc']}, Python {info['python']}. Commit {info['commit']}. "
        f"The run took {elapsed:.0f} s.",
        "",
    ]
    if crashes:
        lines += ["**A server crashed during this run:** " + "; ".join(crashes), ""]
    lines += ["| attack | what the server did | figures |", "|---|---|---|"]
    for attack, did, figures in rows:
        lines.append(f"| {cell(attack)} | {cell(did)} | {cell(figures)} |")
    lines.append("")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("\n".join(lines))
    log(f"wrote {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="where to write the table (default docs/hostile-clients.md;"
                        " with --only, nothing is written unless --out is given)")
    parser.add_argument("--only", metavar="LETTERS",
                        help="run only these attacks, e.g. --only ad (letters a-h)")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy the servers' logs here")
    parser.add_argument("--binary", metavar="PATH",
                        help="measure this notes binary instead of building one")
    args = parser.parse_args()
    only = set(args.only) if args.only else set("abcdefgh")
    out = args.out or (None if args.only else str(REPO / "docs" / "hostile-clients.md"))

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))

    tmp = Path(tempfile.mkdtemp(prefix="intralb-attacks-"))
    rows, crashes, script_errors = [], [], []
    legit = Legit()
    srv = None
    try:
        binary = Path(args.binary) if args.binary else build()
        info = machine()
        if args.binary:
            info["commit"] += f"; binary {binary} (not built by this run)"
        db = tmp / "notes.db"
        srv = Server(binary, db, "notes")
        srv.start(tmp)
        seed(srv)
        legit.port = srv.port
        legit.start()

        def failed(label, e):
            log(f"{label}: the script failed: {e!r}")
            script_errors.append(f"{label}: {e!r}")
            rows.append((label, "**the script failed to measure this**", repr(e)))

        def phase(label, fn, *a):
            nonlocal srv
            if not srv.alive():  # it died in an earlier phase (and was reported there)
                srv = Server(binary, db, f"notes-restart{len(crashes)}")
                srv.start(tmp)
                legit.port = srv.port
            try:
                rows.append(fn(srv, legit, *a))
            except Exception as e:  # noqa: BLE001 - one attack's failure is reported, not fatal
                failed(label, e)
            if not srv.alive():
                crashes.append(f"{srv.crashed() or srv.name + ' died'} during {label}")
                rows[-1] = (rows[-1][0], "**the server died** — " + rows[-1][1], rows[-1][2])
            time.sleep(1)  # let the previous attack's connections close

        phase("(baseline)", attack_baseline)
        if "a" in only:
            phase("a. slow bodies", attack_slow_bodies, 300, 20, 100,
                  "a. 300 slow bodies: POST /notes, Content-Length 100, 1 byte/s, each replaced "
                  "as soon as it ends, 20 s")
            phase("a2. slow bodies", attack_slow_bodies, 24, 10, 65536,
                  "a2. (extra) 24 slow bodies declaring Content-Length 65536 (= buffer_body), "
                  "1 byte/s, each replaced as soon as it ends, 10 s")
        if "b" in only:
            phase("b. short body", attack_short_body)
        if "c" in only:
            phase("c. stuck connections", attack_stuck_h2)
        if "d" in only:
            phase("d1. HTTP/2 non-reader", attack_h2_nonreader, 1)
            phase("d2. HTTP/2 non-reader", attack_h2_nonreader, 2)
        if "e" in only:
            phase("e. HTTP/1 non-readers", attack_h1_nonreaders, 50, 1,
                  "e. 50 HTTP/1 clients that never read: GET /notes, 4 KiB receive buffer")
            phase("e2. HTTP/1 non-readers", attack_h1_nonreaders, 10, 4,
                  "e2. (extra) 10 HTTP/1 clients that never read, each pipelining 4 × GET /notes"
                  " (more than the kernel buffers)")
        if "h" in only:
            phase("h. malformed requests", lambda s, _legit: attack_malformed(s))
        # f and g need servers of their own: this one goes.
        legit.paused.set()
        rc = srv.terminate()
        if srv.expected_exit and srv.crashed():  # a non-zero exit on SIGTERM
            crashes.append(srv.crashed())
        log(f"{srv.name}: exit status {rc} on SIGTERM")
        for letter, label, fn in (("f", "f. fd exhaustion", attack_fd_exhaustion),
                                  ("g", "g. drain", attack_drain)):
            if letter not in only:
                continue
            try:
                other, row = fn(binary, db, tmp)
                rows.append(row)
                if other.crashed():
                    crashes.append(other.crashed())
                    rows[-1] = (row[0], "**the server crashed** — " + row[1], row[2])
            except Exception as e:  # noqa: BLE001
                failed(label, e)
        rows.sort(key=lambda r: ("(abcdefgh".find(r[0][0]) % 100, r[0]))
        elapsed = now() - T0
        if out:
            write_doc(out, rows, info, elapsed, crashes)
        for attack, did, figures in rows:
            print(f"\n== {attack}\n   did: {did}\n   figures: {figures}", file=sys.stderr)
    finally:
        STOP.set()
        close_all_sockets()
        for s in SERVERS:
            if s.alive():
                s.expected_exit = True
                s.terminate(wait=5)
            s.kill()
        if legit.is_alive():
            legit.join(timeout=15)
        for s in SERVERS:
            try:
                s.logfile.close()
            except Exception:  # noqa: BLE001
                pass
        if args.keep_logs:
            Path(args.keep_logs).mkdir(parents=True, exist_ok=True)
            for f in tmp.glob("*.log"):
                shutil.copy(f, args.keep_logs)
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"done in {now() - T0:.0f} s")
    if crashes:
        log("server crashed: " + "; ".join(crashes))
        return 1
    if script_errors:
        log("measurement failures: " + "; ".join(script_errors))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
