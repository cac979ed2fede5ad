#!/usr/bin/env bash
# Fairness: a tarpit domain never holds up the fast ones. One farm: a tarpit host (every reply one
# byte per second, so no greeting completes within mxprobe's 10 s timeouts) serving tarpit.test,
# and 5 fast hosts (every reply 10 ms late: the runs are bound by sessions, not by CPU) serving
# fast1..fast50.test. Two kinds of run with the same policy:
#   (a) the 10,000 fast addresses (200 per domain) alone;
#   (b) the 5,000 tarpit addresses first, then the same 10,000 fast addresses (a FIFO, or anything
#       else that lets the tarpit's addresses or sessions hold up the others, stalls on them).
# The policy caps each MX group at 10 sessions and all of them at 60: the tarpit group sits on its
# 10 sessions (none ends before the fast domains are done) while the 5 fast groups keep their 50.
# The done-when: the fast domains finish at >= 90% of the rate they reach without the tarpit,
# measured here (a, b, a, b; the best of each kind is compared).
#
# When the fast domains "finish": mxprobe gathers its output in 64 KiB blocks, so in (b) the last
# fast records sit in its buffer until tarpit records fill it. The finish time is therefore taken
# where it happens: the farm's --log is read as a stream, lines time-stamped with
# time.monotonic(); a run's fast domains are finished when the last of the 10,000 fast addresses
# is sent in a RCPT command (its reply follows 10 ms later, in both runs alike). The records are
# still read from mxprobe's stdout and every fast verdict checked against `mxfarm truth`; (b) is
# killed once the farm has seen every fast address, instead of waiting for the tarpit.
#
# Scratch knobs (the defaults are the test): FAIR_PER_MX=60 lets the tarpit's group take every
# session, as a scheduler without per-group caps would, and the check must then fail;
# FAIR_MAX_SESSIONS, FAIR_RECIPIENTS change the policy's max_sessions and session.recipients
# (mxprobe's input read-ahead is 4 x their product); FAIR_ROUNDS (2) the number of (a, b) pairs.
# FAIR_MIN_RATIO (0.9) is the done-when's bound; sanitizer builds set a lower one (CMakeLists:
# there both processes are CPU-bound, so (b)'s 5,000 extra lines cost fast verifications too).
# Env MXFARM, MXPROBE. Range 127.215-224.0.0/16 (see pick_net in lib.sh).
source "$(dirname "$0")/../lib.sh"
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
PER_MX=${FAIR_PER_MX:-10}
ROUNDS=${FAIR_ROUNDS:-2}
export FAIR_MIN_RATIO=${FAIR_MIN_RATIO:-0.9}

cat >"$WORK/policy.toml" <<EOF
# Polite but fast: no rate limits (our own farm), 10 sessions per MX group (window open from
# the start), 60 in all.
[global]
max_sessions = ${FAIR_MAX_SESSIONS:-60}
builtin_providers = false

[defaults]
per_mx = { sessions = $PER_MX, connect_rate = 0, rcpt_rate = 0 }
per_source = { sessions = $PER_MX, connect_rate = 0, rcpt_rate = 0 }
per_domain = { sessions = $PER_MX, connect_rate = 0, rcpt_rate = 0 }
session = { recipients = ${FAIR_RECIPIENTS:-25}, rejections = 8 }
backoff = { initial_sessions = $PER_MX }
# Timeouts are retry_later: one try, so the tarpit's addresses end at their first timeout (10 s,
# after the fast domains are done: until then its sessions are all parked on the tarpit).
retry = { schedule = ["60s"], attempts = 1 }
EOF

cat >"$WORK/driver.py" <<'PY'
"""Builds the scenario and the lists, runs the farm and the mxprobe runs, prints the rates."""
import csv, ctypes, json, os, signal, socket, subprocess, sys, threading, time

(mxfarm, mxprobe, work, net, dns_port, rounds) = sys.argv[1:7]
rounds = int(rounds)
sc_path, report_path = f"{work}/scenario.json", f"{work}/report.json"
FAST_HOSTS, FAST_DOMAINS, PER_DOMAIN, TARPIT_N = 5, 50, 200, 5000
MARK_IP = f"127.{net}.7.7"  # a client address of our own: its connect line marks "log drained"
SOURCE_IP = f"127.{net}.9.1"
STYLES = ["postfix", "exchange", "gmail", "yahoo", "postfix"]

# --- Scenario: the tarpit host and domain, 5 fast hosts with 10 domains each.
tarpit_host = {"name": "mx.tarpit.test", "ip": f"127.{net}.1.1", "style": "postfix",
               "tarpit_byte_ms": 1000}
fast_hosts = [{"name": f"mx{h}.fast.test", "ip": f"127.{net}.2.{h}", "style": STYLES[h - 1],
               "reply_delay_ms": 10} for h in range(1, FAST_HOSTS + 1)]
mailboxes = ({f"user{i}": "ok" for i in range(1, 151)} | {f"full{i}": "full" for i in range(1, 11)}
             | {f"disabled{i}": "disabled" for i in range(1, 11)})
fast_domains = [{"name": f"fast{d}.test", "dns": "mx",
                 "mx": [{"pref": 10, "host": fast_hosts[(d - 1) % FAST_HOSTS]["name"]}],
                 "mailboxes": mailboxes} for d in range(1, FAST_DOMAINS + 1)]
tarpit_domain = {"name": "tarpit.test", "dns": "mx", "mx": [{"pref": 10, "host": "mx.tarpit.test"}],
                 "mailboxes": {f"user{i}": "ok" for i in range(1, 11)}}
dns = {"ip": "127.0.0.1", "port": int(dns_port), "ttl": 60}
def scenario(hosts, domains):
    return {"version": 1, "dns": dns, "hosts": hosts, "domains": domains}
json.dump(scenario([tarpit_host] + fast_hosts, [tarpit_domain] + fast_domains), open(sc_path, "w"))

# --- The truth: `truth --count N` over a scenario holding only the fast domains gives exactly 200
# per domain (150 ok, 10 full, 10 disabled, then nobody1..30); the tarpit's alone gives 5,000.
def truth(name, hosts, domains, count):
    path = f"{work}/{name}.json"
    json.dump(scenario(hosts, domains), open(path, "w"))
    out = subprocess.run([mxfarm, "truth", path, "--count", str(count), "--timeout-ms", "10000"],
                         check=True, capture_output=True, text=True).stdout
    return list(csv.DictReader(out.splitlines()))
fast_rows = truth("fast", fast_hosts, fast_domains, FAST_DOMAINS * PER_DOMAIN)
tarpit_rows = truth("tarpit", [tarpit_host], [tarpit_domain], TARPIT_N)
expect = {r["email"].lower(): (r["verdict"], r["reason"]) for r in fast_rows}
assert len(expect) == FAST_DOMAINS * PER_DOMAIN, len(expect)
assert all(r["reason"] == "timeout" for r in tarpit_rows) and len(tarpit_rows) == TARPIT_N
kinds = {}
for v in expect.values():
    kinds[v] = kinds.get(v, 0) + 1
# The lists: fast addresses round-robin over the domains (a mixed list); (b) has the tarpit first.
fast = [r["email"] for r in fast_rows]
with open(f"{work}/a.txt", "w") as f:
    f.write("\n".join(fast) + "\n")
with open(f"{work}/b.txt", "w") as f:
    f.write("\n".join([r["email"] for r in tarpit_rows] + fast) + "\n")

# --- The farm, its log read by a thread that stamps what we need.
libc = ctypes.CDLL(None, use_errno=True)
def die_with_parent():
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: no orphan farm if this script dies
farm = subprocess.Popen([mxfarm, "run", sc_path, "--report", report_path, "--log"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=die_with_parent)
farm_err = []  # lines that are not the per-command log

class RunState:
    def __init__(self):
        self.first_rcpt = {}  # fast address -> monotonic time of its first RCPT
        self.tarpit_connects = []
        self.all_fast = threading.Event()
        self.mark = threading.Event()
tr = RunState()  # replaced (not changed) between runs
fast_set = set(expect)
FAST_TOTAL = len(fast_set)

def read_log():
    for raw in farm.stderr:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        st = tr
        i = line.find(" C: RCPT TO:<")
        if i >= 0:
            addr = line[i + 13:line.find(">", i)].lower()
            if addr in fast_set and addr not in st.first_rcpt:
                st.first_rcpt[addr] = time.monotonic()
                if len(st.first_rcpt) == FAST_TOTAL:
                    st.all_fast.set()
        elif " connect " in line:
            if line.endswith(" connect " + MARK_IP):
                st.mark.set()
            elif line.startswith("mxfarm: mx.tarpit.test connect"):
                st.tarpit_connects.append(time.monotonic())
        elif not line.startswith("mxfarm: mx"):
            farm_err.append(line)
log_thread = threading.Thread(target=read_log, daemon=True)

ready = farm.stdout.readline().decode()
if not ready.startswith("ready dns="):
    farm.wait()
    err = farm.stderr.read().decode()
    sys.stderr.write(err)
    sys.exit(3 if ("already in use" in err or "dnsmasq exited" in err) else 1)
log_thread.start()

def drain_log():
    """Returns once the log thread has read every line written so far: our own marker
    connection's line comes after them."""
    tr.mark.clear()
    s = socket.socket()
    s.bind((MARK_IP, 0))
    s.connect((fast_hosts[0]["ip"], 25))
    s.close()
    if not tr.mark.wait(10):
        sys.exit("FAIL: the farm's log did not show our marker connection")

def run(kind):
    """One mxprobe run: returns (time until the farm had seen every fast address, time until
    mxprobe had written every fast record (None if it did not before the kill), the fast records,
    tarpit connections opened before the fast domains were done)."""
    global tr
    drain_log()  # the previous run's last lines (sessions closing) go to the old state
    tr = RunState()
    # --order completion: the fast records must reach the output while the tarpit's addresses,
    # read before them, still wait (input order would hold them back by design, up to its window).
    cmd = [mxprobe, "verify", "--no-cache", "--order", "completion", "--input", f"{work}/{kind}.txt",
           "--output", "-", "--no-progress",
           "--dns", f"127.0.0.1:{dns_port}", "--timeout-dns", "1",
           "--policy", f"{work}/policy.toml", "--source-ip", SOURCE_IP,
           "--helo", "probe.client.test",
           "--timeout-connect", "10", "--timeout-banner", "10", "--timeout-command", "10"]
    err = open(f"{work}/mxprobe-{kind}.err", "w")
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
    recs = {}
    stream_t = [None]
    def read_out():
        for line in p.stdout:
            try:
                r = json.loads(line)
            except ValueError:  # (b): the kill may cut a write short
                continue
            e = r["email"].lower()
            if e in fast_set:
                recs[e] = r
                if len(recs) == FAST_TOTAL:
                    stream_t[0] = time.monotonic() - t0
    reader = threading.Thread(target=read_out, daemon=True)
    reader.start()
    # The farm sees every fast address within the deadline. (a) then ends on its own; (b) is
    # killed at once: its last fast records may sit in mxprobe's buffer behind the tarpit's.
    if not tr.all_fast.wait(60):
        p.kill()
        sys.exit(f"FAIL ({kind}): after 60 s the farm has seen {len(tr.first_rcpt)} of the "
                 f"{FAST_TOTAL} fast addresses")
    if kind == "a":
        rc = p.wait(30)
        if rc != 0:
            sys.exit(f"FAIL (a): mxprobe exit {rc}: {open(err.name).read()[-2000:]}")
    else:
        if p.poll() is None:
            p.kill()
        elif p.returncode != 0:
            sys.exit(f"FAIL (b): mxprobe exit {p.returncode}: {open(err.name).read()[-2000:]}")
        p.wait()
    reader.join(10)
    drain_log()  # every RCPT line of this run is stamped now
    finish = max(tr.first_rcpt.values()) - t0
    tarpit_during = sum(1 for t in tr.tarpit_connects if t - t0 <= finish)
    return finish, stream_t[0], dict(recs), tarpit_during

bad = []
results = {"a": [], "b": []}
for rnd in range(rounds):
    for kind in ("a", "b"):
        finish, stream, recs, tarpit_during = run(kind)
        results[kind].append(finish)
        wrong = [(e, (r["verdict"], r["reason"]), expect[e]) for e, r in recs.items()
                 if (r["verdict"], r["reason"]) != expect[e]]
        if wrong:
            bad.append(f"({kind}) {len(wrong)} fast verdicts differ from the truth, "
                       f"e.g. {wrong[:3]}")
        # (b): at most one 64 KiB output block, and the replies in flight, are lost to the kill.
        if len(recs) < (FAST_TOTAL if kind == "a" else FAST_TOTAL - 1000):
            bad.append(f"({kind}) {len(recs)} fast records of {FAST_TOTAL}")
        if kind == "b" and tarpit_during < 10:  # its whole cap
            bad.append(f"(b) only {tarpit_during} tarpit connections before the fast domains "
                       "were done: the tarpit was not in the way")
        print(f"run {rnd + 1}{kind}: fast addresses done in {finish:.2f} s "
              f"({FAST_TOTAL / finish:.0f}/s); all fast records out after "
              f"{'%.2f s' % stream if stream else 'never'} ({len(recs)} of {FAST_TOTAL}, "
              f"{len(wrong)} wrong); tarpit connections meanwhile {tarpit_during}", flush=True)

farm.send_signal(signal.SIGTERM)
rc = farm.wait(30)
log_thread.join(10)
if rc != 0:
    bad.append(f"mxfarm exit {rc}: {farm_err[-10:]}")
report = json.load(open(report_path))
tarpit = report["mx"].get("mx.tarpit.test", {})
if report["total"]["data_commands"]:
    bad.append(f"{report['total']['data_commands']} DATA commands at the farm")

ta, tb = min(results["a"]), min(results["b"])
rate_a, rate_b = FAST_TOTAL / ta, FAST_TOTAL / tb
ratio = rate_b / rate_a
print(f"verdicts: {sorted(kinds.items())}")
print(f"tarpit host: {tarpit.get('connections')} connections, peak {tarpit.get('peak_concurrent')} "
      f"at once")
times = {k: ", ".join(f"{t:.2f}" for t in v) for k, v in results.items()}
print(f"fast rate without the tarpit {rate_a:.0f}/s (best of {times['a']} s), "
      f"with it {rate_b:.0f}/s (best of {times['b']} s): ratio {ratio:.3f}")
min_ratio = float(os.environ["FAIR_MIN_RATIO"])
if ratio < min_ratio:
    bad.append(f"fast domains slowed by the tarpit: {rate_b:.0f}/s with it, {rate_a:.0f}/s without "
               f"(ratio {ratio:.3f} < {min_ratio})")
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
PY

# The driver starts the farm itself; exit 3 means that the range or DNS port was taken.
run_driver() {
  local rc=0
  "$PY" "$WORK/driver.py" "$MXFARM" "$MXPROBE" "$WORK" "$NET" "$DNS_PORT" "$ROUNDS" || rc=$?
  ((rc == 3)) && return 1
  ((rc == 0)) || fail "fairness (exit $rc)"
}
in_band 215 224 run_driver
echo "PASS sched_fairness"
