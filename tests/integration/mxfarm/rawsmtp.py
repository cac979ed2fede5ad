#!/usr/bin/env python3
# A raw SMTP client for the mxfarm tests: what swaks cannot show (an RST versus a FIN, bytes of
# a reply that never ends, the length of an over-long line, garbage without a reply code).
# Usage: rawsmtp.py IP PORT [--timeout S] [--max-bytes N] [--drain] [COMMAND ...]
# Prints one line per event: "S: <line up to 100 chars> [len=N]", "C: <command>", then
# EOF | RESET | TIMEOUT | TRUNCATED bytes=N lines=M | DONE.
import argparse
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ip")
    ap.add_argument("port", type=int)
    ap.add_argument("--timeout", type=float, default=3.0, help="deadline per reply (s)")
    ap.add_argument("--max-bytes", type=int, default=4 << 20)
    ap.add_argument("--drain", action="store_true",
                    help="after the last reply, read on until the server closes or times out")
    ap.add_argument("commands", nargs="*")
    a = ap.parse_intermixed_args()

    s = socket.create_connection((a.ip, a.port), timeout=a.timeout)
    buf = b""
    total = 0
    lines = 0

    def out(text):
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def read_reply():
        """Reads one reply (up to its "NNN " line); returns an end event or None."""
        nonlocal buf, total, lines
        deadline = time.monotonic() + a.timeout
        while True:
            nl = buf.find(b"\n")
            if nl >= 0:
                line, buf = buf[: nl + 1], buf[nl + 1:]
                text = line.rstrip(b"\r\n")
                lines += 1
                out("S: %s [len=%d]" % (text[:100].decode("latin-1"), len(text)))
                if len(text) >= 4 and text[:3].isdigit() and text[3:4] == b" ":
                    return None
                if not (len(text) >= 4 and text[:3].isdigit() and text[3:4] == b"-"):
                    return None  # not SMTP at all: one line is all we take
                continue
            if total >= a.max_bytes:
                return "TRUNCATED bytes=%d lines=%d" % (total, lines)
            try:
                s.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = s.recv(65536)
            except ConnectionResetError:
                return "RESET"
            except socket.timeout:
                if buf:
                    out("S: %s [partial len=%d]" % (buf[:100].decode("latin-1"), len(buf)))
                return "TIMEOUT"
            if not chunk:
                if buf:
                    out("S: %s [partial len=%d]" % (buf[:100].decode("latin-1"), len(buf)))
                return "EOF"
            total += len(chunk)
            buf += chunk

    end = read_reply()
    for cmd in a.commands:
        if end:
            break
        out("C: " + cmd)
        try:
            s.sendall(cmd.encode() + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            end = "RESET"
            break
        end = read_reply()
    if not end and a.drain:
        while not end:
            end = read_reply()
    out(end or "DONE")
    s.close()


if __name__ == "__main__":
    main()
