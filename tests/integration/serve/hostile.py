#!/usr/bin/env python3
"""Hostile clients against a running `mxprobe serve` (stdlib sockets only).

Usage: hostile.py URL EMAILS_OK EMAIL_BAD SERVER_PID SERVER_STDERR
(EMAILS_OK: deliverable addresses, comma-separated; each check that must really verify takes a
fresh one, so its answer is not a remembered result.)
Checks, the server staying up and answering throughout:
- malformed requests (garbage, no version, bad header syntax, NUL bytes, bad chunked body, bad
  Content-Length, HTTP/2 preface, Content-Length + Transfer-Encoding smuggling): an error status
  or a close, never a 2xx and never an answer to a smuggled request;
- a 100 KiB header gets 431, an 8 KiB URL 414, a 20 MiB body (2 MiB of it streamed) and a 17 MiB
  chunked one 413 (serve allows 16 MiB) and a close;
- slowloris: 20 connections trickling a header byte every 0.5 s get 408 and a close within the
  10 s header timeout (+ margin), while a normal client keeps getting quick answers;
- 1,030 connections trickling a header or saying nothing, from 5 client addresses (more than
  max_connections, 1024): the oldest are closed to make room, the server's descriptors stay
  bounded and /healthz and /v1/verify answer within 1 and 2 s meanwhile;
- WebSocket by hand: a message in 4 fragments (with a ping between them) is one command; 2 MiB
  messages get close 1009, unmasked frames, reserved bits, unknown opcodes and a 1-byte close
  payload get close 1002; a ping whose "id" is nested 60,000 deep gets an error ack; a new
  connection works after each;
- finally /healthz and /v1/verify still answer right, the process lives and its stderr has no
  sanitizer report.
"""
import base64
import hashlib
import http.client
import json
import os
import resource
import select
import socket
import struct
import sys
import threading
import time
import urllib.parse

URL, EMAILS_OK, EMAIL_BAD, SERVER_PID, SERVER_ERR = sys.argv[1:6]
FRESH = EMAILS_OK.split(",")
USED = []
_u = urllib.parse.urlsplit(URL)
HOST, PORT = _u.hostname, _u.port
HEADER_TIMEOUT = 10.0
MAX_CONNECTIONS = 1024
MAX_BODY = 16 << 20  # serve raises the codec's 1 MiB default for job uploads
CHECKS = 0
T0 = time.monotonic()


def fail(msg):
    print(f"FAIL (hostile, t={time.monotonic() - T0:.1f}s): {msg}", file=sys.stderr)
    try:
        with open(SERVER_ERR, errors="replace") as f:
            tail = f.read()[-3000:]
        print("--- serve stderr (tail):\n" + tail, file=sys.stderr)
    except OSError:
        pass
    os._exit(1)


def check(cond, msg):
    global CHECKS
    if not cond:
        fail(msg)
    CHECKS += 1


def server_alive():
    try:
        os.kill(int(SERVER_PID), 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{SERVER_PID}/stat") as f:  # a zombie is not alive
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def wait_io(rd, wr, timeout):
    """select() for any descriptor number (poll: 1,000+ sockets exceed FD_SETSIZE)."""
    p = select.poll()
    ev = {}
    for x in rd:
        ev[x] = ev.get(x, 0) | select.POLLIN
    for x in wr:
        ev[x] = ev.get(x, 0) | select.POLLOUT
    by_fd = {x.fileno(): x for x in ev}
    for x, e in ev.items():
        p.register(x, e)
    r, w = [], []
    for fd, e in p.poll(max(0, int(timeout * 1000))):
        x = by_fd[fd]
        if e & (select.POLLIN | select.POLLHUP | select.POLLERR) and x in rd:
            r.append(x)
        if e & (select.POLLOUT | select.POLLHUP | select.POLLERR) and x in wr:
            w.append(x)
    return r, w, []


def connect(timeout=5.0):
    s = socket.create_connection((HOST, PORT), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def exchange(payload, timeout=5.0, chunk=65536, settle=0.3):
    """Sends `payload` while reading; returns (bytes received, how it ended).

    Ends: "eof" (server closed), "reset" (RST), "open" (everything sent, complete answers in and
    nothing more for `settle` s: a keep-alive connection), "timeout" (neither after `timeout`).
    Sending stops quietly when the server no longer takes bytes (EPIPE/ECONNRESET)."""
    s = connect()
    s.setblocking(False)
    got, pos, end = bytearray(), 0, time.monotonic() + timeout
    how, last = "timeout", time.monotonic()
    try:
        while time.monotonic() < end:
            want_w = [s] if pos < len(payload) else []
            r, w, _ = wait_io([s], want_w, min(0.05, max(0.0, end - time.monotonic())))
            if r:
                try:
                    data = s.recv(65536)
                except ConnectionResetError:
                    how = "reset"
                    break
                except BlockingIOError:
                    data = None
                if data == b"":
                    how = "eof"
                    break
                if data:
                    got += data
                    last = time.monotonic()
            if w:
                try:
                    pos += s.send(payload[pos:pos + chunk])
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    pos = len(payload)
            if (pos >= len(payload) and answers_complete(got) and
                    time.monotonic() - last >= settle):
                how = "open"
                break
    finally:
        s.close()
    return bytes(got), how


def parse_answers(data):
    """[(status, complete)] of the HTTP answers in `data` (1xx interim answers included)."""
    out, rest = [], data
    while rest.startswith(b"HTTP/1."):
        head, sep, rest = rest.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if not sep:
            out.append((status, False))
            break
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        out.append((status, len(rest) >= length))
        rest = rest[length:]
    return out


def answers_complete(data):
    a = parse_answers(data)
    return bool(a) and all(c for _, c in a)


def statuses(data):
    """Status codes of the HTTP answers in `data`."""
    return [st for st, _ in parse_answers(data)]


def get(path, timeout=5.0):
    c = http.client.HTTPConnection(HOST, PORT, timeout=timeout)
    try:
        t = time.monotonic()
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        return r.status, body, time.monotonic() - t
    finally:
        c.close()


def verify_ok(what, limit=2.0, fresh=True):
    """GET /v1/verify of a deliverable address: a fresh one (a real SMTP check) or a used one."""
    if fresh:
        check(FRESH, f"{what}: no unverified deliverable address left")
        email = FRESH.pop()
        USED.append(email)
    else:
        email = USED[-1]
    st, body, dt = get("/v1/verify?email=" + urllib.parse.quote(email), timeout=limit + 3)
    check(st == 200, f"{what}: verify status {st}: {body[:200]!r}")
    rec = json.loads(body)
    check(rec.get("email") == email and rec.get("verdict") == "deliverable"
          and rec.get("reason") == "accepted", f"{what}: verify {email}: {rec}")
    check(not fresh or not rec.get("cached"), f"{what}: a first verification is cached: {rec}")
    check(dt <= limit, f"{what}: verify took {dt:.2f} s (limit {limit} s)")
    return dt


def healthy(what, limit=1.0):
    st, body, dt = get("/healthz", timeout=limit + 3)
    check(st == 200 and b'"ok"' in body, f"{what}: healthz {st} {body[:100]!r}")
    check(dt <= limit, f"{what}: healthz took {dt:.2f} s")
    return dt


# ---------------------------------------------------------------------------------------------
# Slowloris, in a thread of its own (it lasts a header timeout).

SLOW = {"done": False, "results": None, "error": None}


def slowloris(n=20, every=0.5):
    try:
        socks = []
        for _ in range(n):
            s = connect()
            s.setblocking(False)
            socks.append(s)
        # The first bytes start the server's header clock; then one header byte every 0.5 s.
        started = time.monotonic()
        for s in socks:
            s.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        trickle = b"X-Slowloris-" + b"a" * 1000
        sent = {s: 0 for s in socks}
        got = {s: bytearray() for s in socks}
        closed_at = {}
        next_tick = started + every
        while len(closed_at) < n and time.monotonic() - started < HEADER_TIMEOUT + 8:
            live = [s for s in socks if s not in closed_at]
            r, _, _ = wait_io(live, [], max(0.0, next_tick - time.monotonic()))
            for s in r:
                try:
                    data = s.recv(4096)
                except ConnectionResetError:
                    data = b""
                except BlockingIOError:
                    continue
                if data:
                    got[s] += data
                else:
                    closed_at[s] = time.monotonic() - started
            if time.monotonic() >= next_tick:
                next_tick += every
                for s in live:
                    if s in closed_at:
                        continue
                    try:
                        s.send(trickle[sent[s]:sent[s] + 1])
                        sent[s] += 1
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the server closed: the EOF (or RST) shows up on the next read
                    except BlockingIOError:
                        pass
        SLOW["results"] = [(closed_at.get(s), bytes(got[s]), sent[s]) for s in socks]
        for s in socks:
            s.close()
    except Exception as e:  # reported by the main thread
        SLOW["error"] = repr(e)
    SLOW["done"] = True


# ---------------------------------------------------------------------------------------------
# Malformed requests.

MALFORMED = [
    ("garbage", bytes(range(256)) * 16 + b"\r\n\r\n"),
    ("no version", b"GET /healthz\r\n\r\n"),
    ("no version, header", b"GET /healthz\r\nHost: 127.0.0.1\r\n\r\n"),
    ("header without colon", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nNo colon here\r\n\r\n"),
    ("space before colon", b"GET /healthz HTTP/1.1\r\nHost : 127.0.0.1\r\n\r\n"),
    ("NUL in header value", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\x00b\r\n\r\n"),
    ("NUL in URL", b"GET /heal\x00thz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    ("NUL in method", b"G\x00T /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    ("bad chunk size", b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Mxprobe: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"zz\r\nhello\r\n0\r\n\r\n"),
    ("chunk size overflow", b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Mxprobe: 1\r\nTransfer-Encoding: chunked"
     b"\r\n\r\nffffffffffffffffffffff\r\nx\r\n"),
    ("chunk without CRLF", b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Mxprobe: 1\r\nTransfer-Encoding: chunked"
     b"\r\n\r\n5\r\nhelloXX0\r\n\r\n"),
    ("Content-Length abc", b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Mxprobe: 1\r\nContent-Length: abc\r\n\r\n"),
    ("Content-Length -1", b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Mxprobe: 1\r\nContent-Length: -1\r\n\r\n"),
    ("Content-Length twice", b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Mxprobe: 1\r\nContent-Length: 2\r\n"
     b"Content-Length: 3\r\n\r\n{}x"),
    ("Content-Length 2^64", b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Mxprobe: 1\r\n"
     b"Content-Length: 18446744073709551617\r\n\r\n"),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"),
    ("HTTP/9.9", b"GET /healthz HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n"),
    ("no Host", b"GET /healthz HTTP/1.1\r\n\r\n"),
    ("two Hosts", b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    ("bad method", b"BREW /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    ("long method", b"A" * 5000 + b" /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    ("bad percent escape", b"GET /v1/verify?email=%zz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    ("65 headers", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
     + b"".join(b"X-H%d: v\r\n" % i for i in range(65)) + b"\r\n"),
]

# What the codec (Debian's http_parser, built non-strict) lets through although RFC 9112 would
# refuse it: whitespace in or after a field name (§5.1 says 400), obs-fold (§5.2 allows unfolding).
# Only safety is asserted: at most one answer, no 5xx, no hang; the outcome is printed.
LENIENT = [
    ("space before colon", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A : b\r\n\r\n"),
    ("header name with space", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Name: y\r\n\r\n"),
    ("obs-fold", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\r\n b\r\n\r\n"),
]

# Content-Length and Transfer-Encoding together (RFC 9112 §6.1: a smuggling attempt): the request
# is refused and the GET hidden in its body must never be answered.
SMUGGLE = [
    ("CL+TE", b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Mxprobe: 1\r\nContent-Length: 45\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    ("TE+CL", b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Mxprobe: 1\r\nTransfer-Encoding: chunked\r\n"
     b"Content-Length: 4\r\n\r\n5c\r\nGET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n0\r\n\r\n"),
    ("CL+TE, space before colon", b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Mxprobe: 1\r\n"
     b"Content-Length : 45\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
     b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    ("CL+TE, space before colon 2", b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Mxprobe: 1\r\n"
     b"Content-Length: 45\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"
     b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    ("TE obfuscated", b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Mxprobe: 1\r\nContent-Length: 45\r\n"
     b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\nGET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
]


def malformed_checks():
    seen = {}
    for name, payload in MALFORMED:
        data, how = exchange(payload)
        codes = statuses(data)
        seen[name] = f"{codes[0] if codes else '-'}/{how}"
        # An error answer (4xx, or 501/505 for what HTTP/1.1 cannot be) and a close, or a bare
        # close; an answer from the application (a 4xx) may keep the connection open.
        check(how != "timeout", f"{name}: no answer and no close in 5 s, got {data[:120]!r}")
        check(len(codes) <= 1, f"{name}: {len(codes)} answers: {data[:300]!r}")
        if codes:
            check(400 <= codes[0] < 500 or codes[0] in (501, 505),
                  f"{name}: status {codes[0]}: {data[:200]!r}")
        check(data == b"" or codes, f"{name}: not an HTTP answer: {data[:120]!r}")
        check(codes or how != "open", f"{name}: open without an answer")
    for name, payload in LENIENT:
        data, how = exchange(payload)
        codes = statuses(data)
        seen[name] = f"{codes[0] if codes else '-'}/{how} (lenient)"
        check(how != "timeout", f"{name}: no answer and no close in 5 s, got {data[:120]!r}")
        check(len(codes) <= 1 and all(c < 500 for c in codes), f"{name}: {data[:300]!r}")
    for name, payload in SMUGGLE:
        data, how = exchange(payload)
        codes = statuses(data)
        seen[name] = codes
        check(b"mxprobe_" not in data, f"{name}: the smuggled GET /metrics was answered")
        check(len(codes) <= 1, f"{name}: {len(codes)} answers: {data[:300]!r}")
        check(how in ("eof", "reset"), f"{name}: connection not closed ({how})")
        if name != "TE obfuscated":  # both framings at once: refused outright
            check(codes and codes[0] == 400, f"{name}: want 400, got {codes} {data[:200]!r}")
        elif codes:  # an unknown coding: refused, or read as the body (never the GET)
            check(codes[0] >= 400, f"{name}: status {codes[0]}")
    # The server still answers, and a keep-alive connection with pipelined good requests works.
    data, how = exchange(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                         b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    check(statuses(data) == [200, 200] and how == "eof", f"pipelined healthz: {data[:300]!r}")
    healthy("after malformed requests")
    return seen


def huge_body(head, n):
    """Sends `head` and streams n body bytes then a never-ending trickle: 413 and FIN at once; the
    server may discard what still comes for a moment, but closes for good (RST) even if the client
    never stops sending. Returns (bytes sent, seconds from the FIN to the RST or None)."""
    s = connect()
    s.sendall(head)
    s.setblocking(False)
    got, sent, fin_at, gone_at = b"", 0, None, None
    end = time.monotonic() + 10
    while time.monotonic() < end and gone_at is None:
        r, w, _ = wait_io([s] if fin_at is None else [], [s], 0.1)
        if r:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                gone_at = time.monotonic()
                break
            except BlockingIOError:
                d = None
            if d == b"":
                fin_at = time.monotonic()
            elif d:
                got += d
        if w:
            try:
                # 2 MiB as fast as it goes, then a trickle that never ends.
                sent += s.send(b"x" * (65536 if sent < n else 1024))
            except BlockingIOError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                gone_at = time.monotonic()
        if sent >= n and fin_at is not None:
            time.sleep(0.05)  # pace the trickle
    # What arrived before the end is still readable (a send error may have come first).
    s.setblocking(True)
    s.settimeout(2)
    try:
        while fin_at is None:
            d = s.recv(65536)
            if not d:
                fin_at = gone_at or time.monotonic()
            got += d
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    check(statuses(got) == [413], f"20 MiB body: {got[:200]!r} ({sent} bytes sent)")
    check(gone_at is not None, "20 MiB body: the server kept reading a trickle for 10 s")
    return sent, (gone_at - fin_at) if fin_at else None


def size_checks():
    big = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"y" * (100 * 1024) + b"\r\n\r\n"
    data, how = exchange(big)
    check(statuses(data)[:1] == [431], f"100 KiB header: {data[:200]!r}")
    check(how in ("eof", "reset"), f"100 KiB header: not closed ({how})")
    many = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-H: v\r\n" * 2000 + b"\r\n"
    data, how = exchange(many)
    check(statuses(data)[:1] == [431], f"2000 headers: {data[:200]!r}")
    url = b"GET /v1/verify?email=" + b"a" * 8192 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    data, how = exchange(url)
    check(statuses(data)[:1] == [414], f"8 KiB URL: {data[:200]!r}")
    check(how in ("eof", "reset"), f"8 KiB URL: not closed ({how})")
    # 20 MiB announced, 2 MiB streamed: 413 at once, then the connection closes.
    head = b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Mxprobe: 1\r\nContent-Length: %d\r\n\r\n" % (20 << 20)
    body_close = huge_body(head, 2 << 20)
    # A chunked body over the limit: 413 too (its size is only known while reading).
    chunk = b"%x\r\n" % (1 << 20) + b"z" * (1 << 20) + b"\r\n"
    n = MAX_BODY // (1 << 20) + 1
    data, how = exchange(b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Mxprobe: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
                         + chunk * n + b"0\r\n\r\n", timeout=8)
    check(statuses(data)[:1] == [413], f"chunked {n} MiB body: {data[:200]!r}")
    check(how in ("eof", "reset"), f"chunked {n} MiB body: not closed ({how})")
    healthy("after oversized requests")
    return body_close


# ---------------------------------------------------------------------------------------------
# WebSocket by hand (RFC 6455).

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(opcode, payload, fin=True, mask=True, rsv=0):
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return hdr + payload
    key = os.urandom(4)
    # XOR with the repeated key, fast for megabytes: as one big integer.
    k = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")
    return hdr + key + masked


class Ws:
    def __init__(self):
        self.s = connect(timeout=5)
        key = base64.b64encode(os.urandom(16))
        self.s.sendall(b"GET /ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                       b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                       b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mxprobe.v1\r\n\r\n"
                       % (HOST.encode(), PORT, key))
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            d = self.s.recv(4096)
            check(d != b"", f"WebSocket handshake: EOF after {self.buf!r}")
            self.buf += d
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        check(lines[0].startswith(b"HTTP/1.1 101 "), f"WebSocket handshake: {head!r}")
        hdrs = {k.strip().lower(): v.strip() for k, _, v in (l.partition(b":") for l in lines[1:])}
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
        check(hdrs.get(b"sec-websocket-accept") == accept, f"Sec-WebSocket-Accept: {head!r}")
        check(hdrs.get(b"sec-websocket-protocol") == b"mxprobe.v1", f"subprotocol: {head!r}")

    def _need(self, n, deadline):
        while len(self.buf) < n:
            self.s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return False
            if not d:
                return False
            self.buf += d
        return True

    def recv_frame(self, timeout=5.0):
        """(fin, opcode, payload), or None on EOF/timeout."""
        deadline = time.monotonic() + timeout
        if not self._need(2, deadline):
            return None
        b0, b1 = self.buf[0], self.buf[1]
        check(not b1 & 0x80, "a server frame is masked")
        n, off = b1 & 0x7F, 2
        if n == 126:
            if not self._need(4, deadline):
                return None
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            if not self._need(10, deadline):
                return None
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        if not self._need(off + n, deadline):
            return None
        payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv_json_until(self, pred, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            f = self.recv_frame(deadline - time.monotonic())
            if f is None:
                return None, "closed"
            fin, op, payload = f
            if op == 0x1:
                m = json.loads(payload)
                if pred(m):
                    return m, None
            elif op == 0x8:
                return None, f"close {payload!r}"
        return None, "timeout"

    def send(self, data):
        self.s.sendall(data)

    def close(self):
        self.s.close()


def ws_expect_close(ws, code, what, payload=b"", timeout=5.0, bare_ok=False):
    """Sends `payload` (reading meanwhile) and expects a close frame with `code`, then EOF.
    With `bare_ok`, closing the TCP connection without a close frame passes too."""
    s = ws.s
    s.setblocking(False)
    pos, deadline, got_close = 0, time.monotonic() + timeout, None
    frames = []
    while time.monotonic() < deadline:
        r, w, _ = wait_io([s], [s] if pos < len(payload) else [],
                          max(0.0, deadline - time.monotonic()))
        if w:
            try:
                pos += s.send(payload[pos:pos + 65536])
            except BlockingIOError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                pos = len(payload)
        if r:
            try:
                d = s.recv(65536)
            except (ConnectionResetError, BlockingIOError):
                d = b""
            if not d:
                break
            ws.buf += d
        while True:  # parse the complete frames in buf
            if len(ws.buf) < 2:
                break
            n, off = ws.buf[1] & 0x7F, 2
            if n == 126:
                if len(ws.buf) < 4:
                    break
                n, off = struct.unpack("!H", ws.buf[2:4])[0], 4
            elif n == 127:
                if len(ws.buf) < 10:
                    break
                n, off = struct.unpack("!Q", ws.buf[2:10])[0], 10
            if len(ws.buf) < off + n:
                break
            op, body = ws.buf[0] & 0x0F, ws.buf[off:off + n]
            ws.buf = ws.buf[off + n:]
            frames.append(op)
            if op == 0x8:
                got_close = struct.unpack("!H", body[:2])[0] if len(body) >= 2 else 1005
    eof = time.monotonic() < deadline
    ws.close()
    check(got_close == code or (bare_ok and got_close is None and eof),
          f"{what}: close code {got_close}, want {code} (opcodes {frames})")
    check(eof, f"{what}: the server did not close the TCP connection within {timeout} s")


def ws_ping_ok(what, n=1):
    ws = Ws()
    ws.send(frame(0x1, json.dumps({"id": n, "cmd": "ping"}).encode()))
    ack, err = ws.recv_json_until(lambda m: m.get("type") == "ack" and m.get("id") == n)
    check(ack is not None and ack.get("ok") is True, f"{what}: ping ack {ack} ({err})")
    ws.close()


def ws_checks():
    ws_ping_ok("WebSocket before the hostile frames")
    # A text message in 4 fragments (first + 3 continuations), a ping between two of them.
    cmd = json.dumps({"id": 1, "cmd": "ping"}).encode()
    parts = [cmd[:5], cmd[5:9], cmd[9:15], cmd[15:]]
    ws = Ws()
    ws.send(frame(0x1, parts[0], fin=False))
    ws.send(frame(0x0, parts[1], fin=False))
    ws.send(frame(0x9, b"mid-message ping"))  # control frames may interleave (RFC 6455 §5.4)
    ws.send(frame(0x0, parts[2], fin=False))
    ws.send(frame(0x0, parts[3], fin=True))
    pong, deadline = None, time.monotonic() + 5
    ack = None
    while time.monotonic() < deadline and (pong is None or ack is None):
        f = ws.recv_frame(deadline - time.monotonic())
        check(f is not None, f"fragmented message: connection closed (pong {pong}, ack {ack})")
        _, op, payload = f
        if op == 0xA:
            pong = payload
        elif op == 0x1:
            m = json.loads(payload)
            if m.get("type") == "ack":
                ack = m
        elif op == 0x8:
            fail(f"fragmented message: close frame {payload!r}")
    check(ack is not None and ack.get("id") == 1 and ack.get("ok") is True,
          f"fragmented ping: ack {ack}")
    check(pong == b"mid-message ping", f"ping between fragments: pong {pong!r}")
    # The same connection goes on working, then closes cleanly on our close frame.
    ws.send(frame(0x1, json.dumps({"id": 2, "cmd": "ping"}).encode()))
    ack, err = ws.recv_json_until(lambda m: m.get("type") == "ack" and m.get("id") == 2)
    check(ack and ack["ok"], f"ping after the fragmented message: {ack} ({err})")
    ws_expect_close(ws, 1000, "client close", frame(0x8, struct.pack("!H", 1000)))

    big = b'{"id":3,"cmd":"ping","pad":"' + b"x" * (2 << 20) + b'"}'
    cases = [
        ("2 MiB message", 1009, frame(0x1, big)),
        ("2 MiB in 512 KiB fragments", 1009,
         b"".join(frame(0x1 if i == 0 else 0x0, big[i:i + (512 << 10)],
                        fin=i + (512 << 10) >= len(big))
                  for i in range(0, len(big), 512 << 10))),
        ("unmasked frame", 1002, frame(0x1, b'{"id":4,"cmd":"ping"}', mask=False)),
        ("RSV1 set", 1002, frame(0x1, b'{"id":5,"cmd":"ping"}', rsv=4)),
        ("RSV3 set", 1002, frame(0x1, b'{"id":5,"cmd":"ping"}', rsv=1)),
        ("opcode 0x3", 1002, frame(0x3, b"???")),
        ("opcode 0xB", 1002, frame(0xB, b"???")),
        ("continuation first", 1002, frame(0x0, b'{"id":6}')),
        ("text inside a message", 1002, frame(0x1, b"{", fin=False) + frame(0x1, b"}")),
        # wslay's frame layer rejects these itself; the codec then drops the TCP connection
        # without sending the 1002 close frame wslay queued (RFC 6455 §7.1.7 says SHOULD send).
        ("fragmented ping", 1002, frame(0x9, b"abc", fin=False), True),
        ("ping of 126 bytes", 1002, frame(0x9, b"p" * 126), True),
        # RFC 6455 §5.5.1: a close payload is empty or starts with a 2-byte code.
        ("1-byte close payload", 1002, frame(0x8, b"\x03")),
    ]
    for n, (what, code, payload, *bare) in enumerate(cases):
        ws = Ws()
        ws_expect_close(ws, code, what, payload, timeout=8, bare_ok=bool(bare))
        ws_ping_ok(f"a new WebSocket after '{what}'", 100 + n)
    healthy("after the WebSocket frames")
    # An "id" nested 60,000 deep (120 KB, within the 1 MiB message limit) crashed serve (stack
    # overflow copying and dumping it); now it gets an error ack and the connection goes on.
    for depth, tag in ((60000, b"[]"), (1000, b"{}"), (17, b"[]")):
        ws = Ws()
        nested = tag[:1] * depth + tag[1:] * depth if tag == b"[]" else \
            b'{"a":' * depth + b"1" + b"}" * depth
        ws.send(frame(0x1, b'{"cmd":"ping","id":' + nested + b"}"))
        ack, err = ws.recv_json_until(lambda m: m.get("type") == "ack", timeout=10)
        check(ack is not None and ack.get("ok") is False and ack.get("id") is None,
              f"ping with an id nested {depth} deep: ack {ack} ({err})")
        ws.send(frame(0x1, json.dumps({"id": 7, "cmd": "ping"}).encode()))
        ack, err = ws.recv_json_until(lambda m: m.get("type") == "ack" and m.get("id") == 7)
        check(ack and ack["ok"], f"ping after the nested one ({depth}): {ack} ({err})")
        ws.close()
        check(server_alive(), f"serve died on an id nested {depth} deep")
    healthy("after the nested JSON")
    return len(cases) + 3


# ---------------------------------------------------------------------------------------------
# 1,000 idle connections.


def accepted(client_ports):
    """How many of our connections (by client port) the server has accept()ed: in /proc/net/tcp
    the server's end of a connection still in the listen backlog has no inode yet."""
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            lport = int(fields[1].rsplit(":", 1)[1], 16)
            rport = int(fields[2].rsplit(":", 1)[1], 16)
            if lport == PORT and rport in client_ports and fields[3] == "01" and fields[9] != "0":
                n += 1
    return n


def idle_checks(n=1030, sources=5):
    """1,030 connections that trickle a request header (or say nothing), from 5 client
    addresses: more than max_connections (1024). The oldest of them are closed to make room, so
    the server's descriptors stay bounded and other clients get quick answers."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = n + 200
    if soft < need:
        check(hard == resource.RLIM_INFINITY or hard >= need,
              f"RLIMIT_NOFILE hard limit {hard} < {need}: cannot open {n} connections")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    fds_before = len(os.listdir(f"/proc/{SERVER_PID}/fd"))
    t = time.monotonic()
    slow = []
    for i in range(n):
        src = f"127.0.0.{101 + i % sources}"
        s = socket.create_connection((HOST, PORT), timeout=5, source_address=(src, 0))
        if i % 2 == 0:
            s.sendall(b"GET /v1/jobs HTTP/1.1\r\nHo")  # and never the rest
        slow.append(s)
    opened = time.monotonic() - t
    dt = verify_ok(f"with {n} slow connections", limit=2.0)
    healthy(f"with {n} slow connections")
    # The bound holds once the closes of the connections it shed are done: a close is
    # asynchronous (io_uring), so a count taken at one instant may see one more for a moment.
    deadline = time.monotonic() + 2
    while True:
        fds_full = len(os.listdir(f"/proc/{SERVER_PID}/fd"))
        if fds_full - fds_before <= MAX_CONNECTIONS or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    check(fds_full - fds_before <= MAX_CONNECTIONS,
          f"{n} slow connections: server fds {fds_before} -> {fds_full}")
    # The oldest made room: at least n + 1 (our verify) - 1024 of them were closed.
    deadline, closed = time.monotonic() + 5, set()
    while time.monotonic() < deadline and len(closed) < n + 1 - MAX_CONNECTIONS:
        r, _, _ = wait_io([s for s in slow if s not in closed], [], 0.2)
        for s in r:
            try:
                s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                pass
            closed.add(s)
    check(len(closed) >= n + 1 - MAX_CONNECTIONS,
          f"{n} slow connections: {len(closed)} closed to make room, want {n + 1 - MAX_CONNECTIONS}")
    check(min(slow.index(s) for s in closed) < 20, "the oldest slow connections make room first")
    for s in slow:
        s.close()
    deadline = time.monotonic() + 5
    while True:
        try:
            healthy("after closing the slow connections")
            break
        except (ConnectionError, http.client.HTTPException, socket.timeout):
            check(time.monotonic() < deadline, "no answer after closing the slow connections")
            time.sleep(0.1)
    return opened, dt, len(closed), fds_full


# ---------------------------------------------------------------------------------------------


def main():
    check(server_alive(), "server not running at the start")
    healthy("at the start")
    verify_ok("at the start", limit=5.0)  # the first one also warms DNS and the farm up

    th = threading.Thread(target=slowloris, daemon=True)
    th.start()
    lat = []
    seen = malformed_checks()
    lat.append(healthy("during slowloris"))
    body_close = size_checks()
    lat.append(healthy("during slowloris"))
    nws = ws_checks()
    # A normal client keeps getting quick answers while the slowloris connections hang on.
    while not SLOW["done"]:
        lat.append(healthy("during slowloris", limit=0.5))
        verify_ok("during slowloris", limit=2.0, fresh=len(FRESH) > 3)
        th.join(0.3)
    check(SLOW["error"] is None, f"slowloris client: {SLOW['error']}")
    times = []
    for closed_at, got, sent in SLOW["results"]:
        check(closed_at is not None, f"slowloris: a connection still open after "
              f"{HEADER_TIMEOUT + 8} s ({sent} bytes trickled)")
        check(HEADER_TIMEOUT - 0.5 <= closed_at <= HEADER_TIMEOUT + 2.5,
              f"slowloris: closed after {closed_at:.2f} s (header timeout {HEADER_TIMEOUT} s)")
        check(statuses(got) == [408], f"slowloris: answer {got[:100]!r}")
        times.append(closed_at)

    idle = idle_checks()

    # The end: still up, still verifying right, nothing reported by a sanitizer.
    healthy("at the end")
    verify_ok("at the end")
    st, body, _ = get("/v1/verify?email=" + urllib.parse.quote(EMAIL_BAD))
    check(st == 200 and json.loads(body).get("verdict") == "undeliverable",
          f"at the end: bad address {st} {body[:200]!r}")
    check(server_alive(), "server died")
    with open(SERVER_ERR, errors="replace") as f:
        err = f.read()
    for bad in ("AddressSanitizer", "runtime error", "LeakSanitizer"):
        check(bad not in err, f"serve stderr reports {bad!r}")
    print(f"hostile: {CHECKS} checks in {time.monotonic() - T0:.1f} s; malformed -> "
          + ", ".join(f"{k}:{v}" for k, v in seen.items()))
    print(f"hostile: 413 then cut after {body_close[0] >> 10} KiB sent; {nws} bad WebSocket frame cases; "
          f"slowloris closed after {min(times):.2f}-{max(times):.2f} s, healthz max "
          f"{max(lat) * 1000:.0f} ms meanwhile; 1030 slow opened in {idle[0]:.2f} s, verify "
          f"{idle[1] * 1000:.0f} ms; {idle[2]} oldest closed to make room (server fds {idle[3]})")


try:
    main()
except Exception as e:  # a timeout or a refused connection: the server misbehaved
    import traceback
    traceback.print_exc()
    fail(f"{type(e).__name__}: {e}")
