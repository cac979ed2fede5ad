#!/usr/bin/env python3
"""pty_run.py OUT CMD...: runs CMD with its stderr on a pseudo-terminal (stdout and stdin as
given), writes every byte the terminal received to OUT, and exits with CMD's status. For tests
of what a program shows on a terminal (check's live status line)."""
import os
import pty
import subprocess
import sys

out_path, cmd = sys.argv[1], sys.argv[2:]
master, slave = pty.openpty()
proc = subprocess.Popen(cmd, stderr=slave)
os.close(slave)
data = b""
while True:
    try:
        chunk = os.read(master, 65536)
    except OSError:  # EIO: every holder of the slave side is gone
        break
    if not chunk:
        break
    data += chunk
os.close(master)
with open(out_path, "wb") as f:
    f.write(data)
sys.exit(proc.wait())
