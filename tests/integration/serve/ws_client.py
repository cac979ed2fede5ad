#!/usr/bin/env python3
"""WebSocket checks of `mxprobe serve` with a real client (Debian's python3-websockets).

Usage: ws_client.py URL TOKEN_OR_- GROUP EMAIL_OK EMAIL_BAD
Checks: hello then snapshots ~4 per second with the documented keys; `check` answers an ack then
the record with its transcript; `set_group_policy` is acknowledged (and a bad key refused);
unknown commands and garbage get error acks; with a token, a client without it is refused.
"""
import asyncio
import json
import sys
import time
import urllib.request

import websockets

URL, TOKEN, GROUP, EMAIL_OK, EMAIL_BAD = sys.argv[1:6]
PROTOS = ["mxprobe.v1"] + ([f"bearer.{TOKEN}"] if TOKEN != "-" else [])


def fail(msg):
    print(f"FAIL (ws): {msg}", file=sys.stderr)
    sys.exit(1)


async def recv_until(ws, pred, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        m = json.loads(await asyncio.wait_for(ws.recv(), end - time.monotonic()))
        if pred(m):
            return m
    fail("timed out waiting for a message")


async def main():
    if TOKEN != "-":
        try:
            async with websockets.connect(URL, subprotocols=["mxprobe.v1", "bearer.wrong"]):
                fail("a wrong token was accepted")
        except websockets.exceptions.InvalidStatusCode as e:
            if e.status_code != 401:
                fail(f"wrong token: status {e.status_code}, want 401")
    async with websockets.connect(URL, subprotocols=PROTOS, max_size=2**24) as ws:
        if ws.subprotocol != "mxprobe.v1":
            fail(f"subprotocol {ws.subprotocol!r}")
        hello = json.loads(await ws.recv())
        if hello.get("type") != "hello" or hello.get("version") != 1:
            fail(f"first message {hello}")
        # Snapshots: 4 per second, with the documented keys.
        t0, snaps = time.monotonic(), []
        while len(snaps) < 5:
            m = json.loads(await ws.recv())
            if m.get("type") == "snapshot":
                snaps.append((time.monotonic(), m))
        span = snaps[-1][0] - snaps[0][0]
        if not 0.6 <= span <= 1.6:
            fail(f"4 snapshot intervals took {span:.2f} s (want ~1 s)")
        keys = {"seq", "totals", "rates", "series", "sessions", "connects_per_s", "dns", "domains",
                "latency", "groups", "sources", "jobs", "reasons", "pending"}
        missing = keys - set(snaps[-1][1])
        if missing:
            fail(f"snapshot lacks {missing}")
        seqs = [s["seq"] for _, s in snaps]
        if seqs != sorted(seqs):
            fail(f"snapshot seq not increasing: {seqs}")
        # check: ack, then the record with its transcript.
        await ws.send(json.dumps({"id": 7, "cmd": "check", "email": EMAIL_OK}))
        ack = await recv_until(ws, lambda m: m.get("type") == "ack" and m.get("id") == 7)
        if not ack["ok"]:
            fail(f"check ack {ack}")
        # The dialogue comes line by line as it happens (`transcript`), then the record.
        lines = []
        while True:
            m = json.loads(await ws.recv())
            if m.get("type") == "transcript" and m.get("id") == 7:
                lines.append(m["line"])
            if m.get("type") == "result" and m.get("id") == 7:
                res = m
                break
        rec = res["record"]
        if rec["email"] != EMAIL_OK or rec["verdict"] not in ("deliverable", "risky"):
            fail(f"check record {rec}")
        if "RCPT TO:" not in rec.get("transcript", ""):
            fail("check record has no transcript")
        # mxprobe's own lines ("* connecting to ...") first, then the dialogue from the greeting.
        smtp_lines = [l for l in lines if not l.startswith("* ")]
        if (not lines or not lines[0].startswith("* connecting to ") or not smtp_lines
                or not smtp_lines[0].startswith("S: 220") or f"C: RCPT TO:<{EMAIL_OK}>" not in lines):
            fail(f"live transcript lines {lines}")
        if "\n".join(lines) + "\n" != rec["transcript"]:
            fail(f"live lines differ from the record's transcript: {lines} / {rec['transcript']!r}")
        await ws.send(json.dumps({"id": 8, "cmd": "check", "email": EMAIL_BAD}))
        res = await recv_until(ws, lambda m: m.get("type") == "result" and m.get("id") == 8)
        if res["record"]["verdict"] != "undeliverable":
            fail(f"bad address record {res}")
        # probe: probe-server on the server's loop; its report comes as a `probe` message.
        domain = EMAIL_OK.split("@")[1]
        await ws.send(json.dumps({"id": 20, "cmd": "probe", "target": domain, "options": {
            "samples": 2, "max_connections": 2, "max_rate": 2, "rate_step": 0.5,
            "bad_rcpts": 3}}))
        ack = await recv_until(ws, lambda m: m.get("type") == "ack" and m.get("id") == 20)
        if not ack["ok"]:
            fail(f"probe ack {ack}")
        rep = await recv_until(ws, lambda m: m.get("type") == "probe" and m.get("id") == 20, 30)
        r = rep.get("report") or {}
        if r.get("catch_all") is not False or r.get("concurrent_connections_tried") != 2 \
                or "rcpt_to" not in r.get("latency", {}) or r.get("connection_rate_tried_per_s") != 2:
            fail(f"probe report {rep}")
        for bad, why in (({"id": 21, "cmd": "probe"}, "target"),
                         ({"id": 22, "cmd": "probe", "target": domain, "options": {"samples": 1e6}},
                          "samples"),
                         ({"id": 23, "cmd": "probe", "target": domain, "options": {"nope": 1}},
                          "nope")):
            await ws.send(json.dumps(bad))
            ack = await recv_until(ws, lambda m, i=bad["id"]: m.get("type") == "ack" and m.get("id") == i)
            if ack["ok"] or why not in ack.get("error", ""):
                fail(f"bad probe {bad} acked {ack}")
        await ws.send(json.dumps({"id": 24, "cmd": "probe", "target": "nxdomain-probe.test"}))
        rep = await recv_until(ws, lambda m: m.get("type") == "probe" and m.get("id") == 24, 30)
        if "error" not in rep or "no mail server" not in rep["error"]:
            fail(f"probe of a domain without mail server {rep}")
        # A group's policy, live.
        await ws.send(json.dumps({"id": 9, "cmd": "set_group_policy", "group": GROUP,
                                  "set": {"per_mx.connect_rate": 3, "per_mx.sessions": 2}}))
        ack = await recv_until(ws, lambda m: m.get("type") == "ack" and m.get("id") == 9)
        if not ack["ok"]:
            fail(f"set_group_policy ack {ack}")
        await ws.send(json.dumps({"id": 10, "cmd": "set_group_policy", "group": GROUP,
                                  "set": {"per_mx.nonsense": 1}}))
        ack = await recv_until(ws, lambda m: m.get("type") == "ack" and m.get("id") == 10)
        if ack["ok"] or "nonsense" not in ack.get("error", ""):
            fail(f"bad key accepted: {ack}")
        # Jobs: a small one over HTTP, then pause, resume and cancel over the WebSocket.
        http = URL.replace("ws://", "http://", 1).rsplit("/ws", 1)[0]
        domain = EMAIL_OK.split("@")[1]
        body = "\n".join(f"zz{i}@{domain}" for i in range(40000)).encode()
        rq = urllib.request.Request(f"{http}/v1/jobs", data=body, method="POST")
        rq.add_header("X-Mxprobe", "1")  # a write (docs/api.md, Security model)
        if TOKEN != "-":
            rq.add_header("Authorization", f"Bearer {TOKEN}")
        job = json.load(urllib.request.urlopen(rq))["id"]
        for n, cmd, state in ((20, "pause", "paused"), (21, "resume", "running"),
                              (22, "cancel", "cancelled")):
            await ws.send(json.dumps({"id": n, "cmd": cmd, "job": job}))
            ack = await recv_until(ws, lambda m, n=n: m.get("type") == "ack" and m.get("id") == n)
            got = ack.get("data", {}).get("state")
            if not (ack["ok"] and got == state):
                fail(f"{cmd}: {ack}")
            if cmd == "resume":  # the job's domain is among the busiest now
                snap = await recv_until(ws, lambda m: m.get("type") == "snapshot")
                if not any(d["name"] == domain and d["pending"] > 0 for d in snap["domains"]):
                    fail(f"{domain} not among the busiest domains: {snap['domains']}")
        await ws.send(json.dumps({"id": 23, "cmd": "pause", "job": 999999}))
        ack = await recv_until(ws, lambda m: m.get("type") == "ack" and m.get("id") == 23)
        if ack["ok"]:
            fail("pause of a job that does not exist acknowledged")
        snap = await recv_until(ws, lambda m: m.get("type") == "snapshot")
        if not any(j["id"] == job for j in snap["jobs"]):
            fail("the job is not in the snapshot")
        if not any(g["replies"]["2xx"] > 0 and g["replies"]["5xx"] > 0 for g in snap["groups"]):
            fail(f"no MX group counts 2xx and 5xx replies: {snap['groups']}")
        if not snap["sources"] or any(s["state"] not in ("ok", "blocked") for s in snap["sources"]):
            fail(f"source states: {snap['sources']}")
        for bad, want in (("not json", None), (json.dumps({"id": 11, "cmd": "fly"}), 11),
                          (json.dumps({"id": 12, "cmd": 5}), 12),
                          (json.dumps({"id": 13, "cmd": "pause", "job": "1"}), 13),
                          (json.dumps({"id": 14, "cmd": "set_group_policy", "group": 5,
                                       "set": {"per_mx.sessions": 1}}), 14)):
            await ws.send(bad)
            ack = await recv_until(ws, lambda m: m.get("type") == "ack" and m.get("id") == want)
            if ack["ok"]:
                fail(f"{bad!r} acknowledged as ok")
        # Live group changes are bounded (64 groups; 3,000 made every command O(n)): the first
        # ones are taken, a new group past the bound is refused, a known one can still change.
        refused = None
        for i in range(70):
            await ws.send(json.dumps({"id": 1000 + i, "cmd": "set_group_policy",
                                      "group": f"mx{i}.bound.test",
                                      "set": {"per_mx.sessions": 3}}))
            ack = await recv_until(ws, lambda m, i=i: m.get("type") == "ack"
                                   and m.get("id") == 1000 + i)
            if not ack["ok"]:
                refused = (i, ack.get("error", ""))
                break
        if refused is None or refused[0] > 64 or "at most 64" not in refused[1]:
            fail(f"live groups not bounded: {refused}")
        await ws.send(json.dumps({"id": 1100, "cmd": "set_group_policy", "group": "mx0.bound.test",
                                  "set": {"per_mx.sessions": 4}}))
        ack = await recv_until(ws, lambda m: m.get("type") == "ack" and m.get("id") == 1100)
        if not ack["ok"]:
            fail(f"a known group could not change at the bound: {ack}")
    print("ws: hello, 5 snapshots in %.2f s, check, set_group_policy, jobs, errors, bounds" % span)


asyncio.run(main())
