#!/usr/bin/env python3
# Integration test: the real mxprobe binary against a real Postfix smtpd (Debian's postfix
# package) with a virtual mailbox domain, on both event-loop backends, with DNS from dnsmasq.
# Postfix runs privately: its own config directory, its own 127.60.x.y:25, started and stopped here.
# Postfix refuses HELO names that are not fully-qualified (reject_non_fqdn_helo_hostname, at RCPT
# as smtpd_delay_reject does), and a source address on 127.60.x.y has a forward-confirmed PTR in
# dnsmasq: mxprobe without --helo must say that PTR name (docs/identity.md) and get real verdicts.
# Usage: postfix_verify.py MXPROBE   (exit 77 = skipped: not root, or postfix/dnsmasq missing)
import ctypes
import json
import os
import pwd
import random
import shutil
import signal
import smtplib
import socket
import struct
import subprocess
import sys
import tempfile
import time

MASTER = "/usr/lib/postfix/sbin/master"
DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
DOMAIN = "pf.test"
RELAY_DOMAIN = "relay.test"  # its MX is our Postfix too, which does not relay for it
MX_HOST = "mx.pf.test"
CLIENT_PTR = "probe.pfclient.test"  # the PTR (and A) name of the source address SOURCE_IP
RCPTS_PER_SESSION = 8  # under Postfix's smtpd_soft_error_limit (10), with the catch-all probe
SKIP = 77

# The mailboxes Postfix has (virtual_mailbox_maps). info@ is a role account that exists.
MAILBOXES = ["alice", "bob", "carol", "info"]

# Addresses to verify and what Postfix does with them (checked against Postfix itself below):
#   ok      - in the virtual mailbox table: 250 2.1.5
#   unknown - not in it: 550 5.1.1 "... Recipient address rejected: User unknown in virtual
#             mailbox table"
#   relay   - a domain Postfix is not responsible for: 554 5.7.1 "Relay access denied"
# Postfix folds the whole lookup key to lower case for texthash/hash maps (the local part too),
# so differently-cased existing users are accepted.
UNKNOWN = [f"nosuch{i:02d}@{DOMAIN}" for i in range(1, 26)]
CASES = [
    ("alice@pf.test", "ok"),
    ("Alice@pf.test", "ok"),  # local part in another case
    ("bob@PF.Test", "ok"),  # domain in another case
    ("CAROL@PF.TEST", "ok"),
    ("info@pf.test", "ok"),  # role account that exists
    ("postmaster@pf.test", "unknown"),  # role account the virtual domain does not list
    ("alice@relay.test", "relay"),
]
ROLES = {"info", "postmaster"}


def make_list():
    # Existing users spread over the list, so sessions mix accepted and rejected recipients.
    lst = list(UNKNOWN)
    for i, case in enumerate(CASES):
        lst.insert(i * 4, case[0])
    return [(a, dict(CASES).get(a, "unknown")) for a in lst]


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def pdeathsig():
    # If this script is killed outright (a ctest timeout), its servers must not outlive it.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def port_free(ip, port, kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind((ip, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def dns_query(port, name, qtype=15, timeout=0.05):
    """One UDP query to 127.0.0.1:port; returns (rcode, answer count) or None."""
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    q += struct.pack(">HH", qtype, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(q, ("127.0.0.1", port))
        while True:
            data = s.recv(512)
            if len(data) >= 12 and struct.unpack(">H", data[:2])[0] == qid:
                flags, _, ancount = struct.unpack(">HHH", data[2:8])
                return flags & 0xF, ancount
    except OSError:
        return None
    finally:
        s.close()


class Servers:
    """dnsmasq and a private Postfix; stop() ends both (and Postfix's children) by pid."""

    def __init__(self, work):
        self.work = work
        self.dns = None
        self.master = None
        self.ip = None
        self.source_ip = None  # a client address with a forward-confirmed PTR (CLIENT_PTR)
        self.dns_port = None

    def start_dns(self):
        for _ in range(8):
            port = random.randrange(26000, 27000)
            udp, tcp = socket.SOCK_DGRAM, socket.SOCK_STREAM
            if not port_free("127.0.0.1", port, udp) or not port_free("127.0.0.1", port, tcp):
                continue
            conf = os.path.join(self.work, "dnsmasq.conf")
            with open(conf, "w") as f:
                # local=: names under .test that are not listed get NXDOMAIN, never forwarded.
                f.write(
                    f"local=/test/\n"
                    f"mx-host={DOMAIN},{MX_HOST},10\n"
                    f"mx-host={RELAY_DOMAIN},{MX_HOST},10\n"
                    f"host-record={MX_HOST},{self.ip}\n"
                    # A and PTR: the source address's reverse DNS is forward-confirmed.
                    f"host-record={CLIENT_PTR},{self.source_ip}\n"
                )
            log = open(os.path.join(self.work, "dnsmasq.err"), "w")
            self.dns = subprocess.Popen(
                [DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts",
                 f"--conf-file={conf}", f"--port={port}", "--listen-address=127.0.0.1",
                 "--bind-interfaces", "--user=root", "--pid-file="],
                stdout=log, stderr=subprocess.STDOUT, preexec_fn=pdeathsig)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.dns.poll() is None:
                r = dns_query(port, DOMAIN)
                if r is not None:
                    check(r == (0, 1), f"dnsmasq answered MX {DOMAIN} with rcode/count {r}")
                    self.dns_port = port
                    return
            if self.dns.poll() is None:
                raise Fail("dnsmasq did not answer within 10 s")
            self.dns = None  # it exited: most likely the port was taken meanwhile; try another
        raise Fail("could not start dnsmasq: " + read_tail(self.work, "dnsmasq.err"))

    def write_postfix_config(self):
        w = self.work
        etc, spool, data = f"{w}/etc", f"{w}/spool", f"{w}/data"
        pf = pwd.getpwnam("postfix")
        # The queue directories master, smtpd and cleanup use (what post-install would make,
        # minus the 4 s it takes): sockets in private/ and public/, cleanup's files in incoming/.
        for d, owner, mode in [(etc, 0, 0o755), (spool, 0, 0o755), (f"{spool}/pid", 0, 0o755),
                               (f"{spool}/private", pf.pw_uid, 0o700),
                               (f"{spool}/public", pf.pw_uid, 0o711),
                               (f"{spool}/incoming", pf.pw_uid, 0o700),
                               (data, pf.pw_uid, 0o700), (f"{w}/mail", 0, 0o755)]:
            os.makedirs(d, exist_ok=True)
            os.chown(d, owner, pf.pw_gid if owner else 0)
            os.chmod(d, mode)
        with open(f"{etc}/vmailbox", "w") as f:
            f.writelines(f"{m}@{DOMAIN} {DOMAIN}/{m}/\n" for m in MAILBOXES)
        with open(f"{etc}/main.cf", "w") as f:
            f.write(f"""compatibility_level = 3.6
queue_directory = {spool}
data_directory = {data}
mail_owner = postfix
inet_interfaces = all
inet_protocols = ipv4
myhostname = {MX_HOST}
mydestination =
mynetworks = 127.0.0.1/32
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_maps = texthash:{etc}/vmailbox
virtual_mailbox_base = {w}/mail
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions =
# the sender identity (docs/identity.md): a bare HELO name is refused, at RCPT (delay_reject)
smtpd_helo_required = yes
smtpd_helo_restrictions = reject_non_fqdn_helo_hostname
# no reverse lookup of the client: /etc/resolv.conf names a resolver off loopback
smtpd_peername_lookup = no
# else each accepted RCPT under concurrency can stall a second (docs/peers.md)
in_flow_delay = 0
""")
        # Only what an RCPT-only session needs: smtpd; trivial-rewrite, anvil and proxymap behind
        # it; cleanup, which smtpd connects to at the first accepted RCPT (smtpd_delay_open_until_
        # valid_rcpt) and which drops the unfinished queue file at RSET/QUIT. No pickup/qmgr.
        with open(f"{etc}/master.cf", "w") as f:
            f.write(f"""{self.ip}:25 inet n - n - - smtpd
rewrite unix - - n - - trivial-rewrite
anvil unix - - n - 1 anvil
proxymap unix - - n - - proxymap
cleanup unix n - n - 0 cleanup
""")

    def start_postfix(self):
        for _ in range(8):
            net, host = random.randrange(256), random.randrange(1, 254)
            self.ip = f"127.60.{net}.{host}"
            self.source_ip = f"127.60.{net}.{host + 1}"
            if not port_free(self.ip, 25):
                continue
            self.write_postfix_config()
            log = open(os.path.join(self.work, "master.err"), "w")
            # -d: stay in the foreground (its messages would go to a syslog that is not there);
            # its own session and process group, so stop() can end it with its children.
            self.master = subprocess.Popen([MASTER, "-c", f"{self.work}/etc", "-d"], stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True,
                                           preexec_fn=pdeathsig)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.master.poll() is None:
                banner = smtp_banner(self.ip)
                if banner is not None:
                    check(banner.startswith(f"220 {MX_HOST} ESMTP Postfix"),
                          f"unexpected banner at {self.ip}:25: {banner!r}")
                    return
                time.sleep(0.05)  # polling for readiness, bounded by the deadline
            if self.master.poll() is None:
                raise Fail("Postfix did not greet within 10 s")
            self.master = None  # bind failed: another process took the address; pick another
        raise Fail("could not start Postfix master: " + read_tail(self.work, "master.err"))

    def stop(self):
        if self.master is not None:
            try:
                os.killpg(self.master.pid, signal.SIGTERM)
                self.master.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
            try:  # children that outlive master (they should not)
                os.killpg(self.master.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if self.master.poll() is None:
                self.master.wait()
            self.master = None
        if self.dns is not None:
            self.dns.terminate()
            try:
                self.dns.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.dns.kill()
                self.dns.wait()
            self.dns = None


def read_tail(work, name):
    path = os.path.join(work, name)
    return open(path, errors="replace").read()[-2000:] if os.path.exists(path) else "(no output)"


def smtp_banner(ip):
    try:
        with socket.create_connection((ip, 25), timeout=1) as s:
            s.settimeout(2)
            data = b""
            while b"\n" not in data:
                chunk = s.recv(512)
                if not chunk:
                    break
                data += chunk
            s.sendall(b"QUIT\r\n")
            return data.decode("ascii", "replace").strip()
    except OSError:
        return None


def postfix_oracle(ip, addresses):
    """What Postfix itself answers to RCPT TO for each address, asked with Python's smtplib
    (an independent client), at most RCPTS_PER_SESSION per connection:
    {address: (code, enhanced, text)}."""
    out = {}
    for i in range(0, len(addresses), RCPTS_PER_SESSION):
        with smtplib.SMTP(ip, 25, local_hostname="oracle.test", timeout=5) as s:
            s.ehlo()
            code, _ = s.mail("")
            check(code == 250, f"oracle MAIL FROM:<> got {code}")
            for a in addresses[i:i + RCPTS_PER_SESSION]:
                code, msg = s.rcpt(a)
                text = msg.decode()
                enhanced, _, rest = text.partition(" ")
                out[a] = (code, enhanced, rest)
    return out


def check_helo_restriction(ip, source_ip):
    """Postfix itself refuses a bare HELO name at RCPT, with the words the engine must read as a
    refusal of our identity (tests/unit/verdict): else the identity run below proves nothing."""
    with smtplib.SMTP(ip, 25, local_hostname="vm", timeout=5,
                      source_address=(source_ip, 0)) as s:
        s.ehlo()
        code, _ = s.mail("")
        check(code == 250, f"bare-HELO oracle MAIL FROM:<> got {code}")
        code, msg = s.rcpt("alice@pf.test")
        want = "5.5.2 <vm>: Helo command rejected: need fully-qualified hostname"
        check((code, msg.decode()) == (504, want), f"Postfix answered {code} {msg!r} to a bare HELO")


def check_identity(mxprobe, backend, common, ip, source_ip, in_path, addrs, kinds, oracle, work):
    """verify from source_ip without --helo: the HELO is its forward-confirmed PTR name (Postfix
    would refuse this host's bare name), no warning, the verdicts and replies Postfix gives."""
    out_path = os.path.join(work, f"identity-{backend}.jsonl")
    no_helo = [a for i, a in enumerate(common) if a != "--helo" and common[i - 1] != "--helo"]
    p = run([mxprobe, "verify", "--no-cache", "--input", in_path, "--output", out_path,
             "--backend", backend, "--no-progress", "--rcpts-per-session", str(RCPTS_PER_SESSION),
             "--source-ip", source_ip] + no_helo)
    check(p.returncode == 0, f"[{backend}] identity verify exit {p.returncode}: {p.stderr}")
    check("warning: HELO" not in p.stderr, f"[{backend}] HELO warning: {p.stderr}")
    records = [json.loads(line) for line in open(out_path) if line.strip()]
    check(sorted(r["line"] for r in records) == list(range(1, len(addrs) + 1)),
          f"[{backend}] identity: not one record per input line")
    for r in records:
        a = addrs[r["line"] - 1]
        check((r["helo"], r["source_ip"]) == (CLIENT_PTR, source_ip),
              f"[{backend}] identity: helo/source_ip {r['helo']}/{r['source_ip']}: {r}")
        try:
            expect_record(r, a, kinds[a], ip, oracle)
        except Fail as e:
            raise Fail(f"[{backend}] identity: {e}")
    print(f"[{backend}] identity: {len(records)} records as {CLIENT_PTR} from {source_ip}")


def expect_record(r, addr, kind, ip, oracle):
    tag = f"{addr}: {json.dumps(r)}"
    check(r["email"] == addr, f"email not echoed: {tag}")
    local, _, dom = addr.rpartition("@")
    check(r["normalized"] == f"{local}@{dom.lower()}", f"normalized: {tag}")
    check(r["domain"] == dom.lower(), f"domain: {tag}")
    check(r["mx"] == MX_HOST and r["mx_ip"] == ip, f"mx/mx_ip: {tag}")
    check(r["flags"]["role"] == (local.lower() in ROLES), f"flags.role: {tag}")
    check(r["attempts"] == 1, f"attempts: {tag}")
    check(r["error"] is None, f"error: {tag}")
    code, enhanced, text = oracle[addr]
    smtp = r["smtp"]
    check(smtp is not None, f"no smtp reply: {tag}")
    # The record carries Postfix's own reply to this RCPT, as an independent client saw it.
    check((smtp["code"], smtp["enhanced"], smtp["message"]) == (code, enhanced, text),
          f"reply differs from Postfix's ({code} {enhanced} {text}): {tag}")
    if kind == "ok":
        check(r["catch_all"] is not True and r["reason"] != "catch_all",
              f"{DOMAIN} was judged catch-all, but Postfix rejected the random probe: {tag}")
        check((r["verdict"], r["reason"]) == ("deliverable", "accepted"), f"verdict: {tag}")
        check(r["catch_all"] is False, f"catch_all should be false (probe rejected): {tag}")
        check(smtp["code"] == 250, f"code: {tag}")
    elif kind == "unknown":
        check((r["verdict"], r["reason"]) == ("undeliverable", "mailbox_not_found"),
              f"verdict: {tag}")
        check((smtp["code"], smtp["enhanced"]) == (550, "5.1.1"), f"code: {tag}")
        check("User unknown in virtual mailbox table" in smtp["message"], f"text: {tag}")
        check(r["catch_all"] is False, f"catch_all: {tag}")
    else:  # relay: docs/verdicts.md rows 18/25 - relaying denied is unknown/blocked, never final
        check((r["verdict"], r["reason"]) == ("unknown", "blocked"), f"verdict: {tag}")
        check((smtp["code"], smtp["enhanced"]) == (554, "5.7.1"), f"code: {tag}")
        check("Relay access denied" in smtp["message"], f"text: {tag}")
        # the probe at this domain was refused the same way: catch-all unknown (verdicts.md)
        check(r["catch_all"] is None, f"catch_all: {tag}")


def check_transcripts(records, n_domain_addrs):
    """Each session sent at most RCPTS_PER_SESSION recipients (so Postfix's error limits, 10
    soft / 20 hard per session, are never reached), never DATA; several sessions were needed."""
    sessions = set()
    for r in records:
        t = r.get("transcript") or ""
        rcpts = [l for l in t.split("\n") if l.startswith("C: RCPT TO:")]
        check(f"C: RCPT TO:<{r['normalized']}>" in rcpts, f"own RCPT not in transcript: {r}")
        check(len(rcpts) <= RCPTS_PER_SESSION, f"{len(rcpts)} RCPTs in one session: {t}")
        check("\nC: DATA" not in t and "\nC: BDAT" not in t, f"DATA sent: {t}")
        check("S: 421" not in t, f"Postfix dropped the session: {t}")
        sessions.add(rcpts[0])  # each address is sent once, so a session's first RCPT names it
    need = -(-(n_domain_addrs + 1) // RCPTS_PER_SESSION) + 1  # + probe; + the relay domain's
    check(len(sessions) >= need, f"{len(sessions)} sessions, expected at least {need}")
    return len(sessions)


def run(cmd, timeout=30):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def check_cli(mxprobe, backend, common, ip, oracle):
    """mxprobe check --json on one existing and one unknown address (exit 4: an undeliverable)."""
    p = run([mxprobe, "check", "--json", "--backend", backend, "alice@pf.test",
             "nosuch99@pf.test"] + common)
    check(p.returncode == 4, f"[{backend}] check exit {p.returncode}: {p.stderr}")
    recs = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    check([r["line"] for r in recs] == [1, 2], f"[{backend}] check: {p.stdout}")
    expect_record(recs[0], "alice@pf.test", "ok", ip, oracle)
    expect_record(recs[1], "nosuch99@pf.test", "unknown", ip, oracle)
    print(f"[{backend}] check --json: {recs[0]['verdict']}, {recs[1]['verdict']}")


def main():
    mxprobe = sys.argv[1]
    if os.geteuid() != 0:
        print("SKIP: a private Postfix master must run as root")
        return SKIP
    for tool in (MASTER, DNSMASQ):
        if not os.access(tool, os.X_OK):
            print(f"SKIP: {tool} is not installed (Debian packages postfix, dnsmasq-base)")
            return SKIP
    t0 = time.monotonic()
    work = tempfile.mkdtemp(prefix="mxp-postfix-")
    os.chmod(work, 0o755)  # Postfix's daemons run as user postfix and must reach their dirs
    servers = Servers(work)
    try:
        servers.start_postfix()
        servers.start_dns()
        ip, dns = servers.ip, f"127.0.0.1:{servers.dns_port}"
        print(f"postfix at {ip}:25, dnsmasq at {dns} ({time.monotonic() - t0:.2f} s)")

        cases = make_list()
        addrs = [a for a, _ in cases]
        kinds = dict(cases)
        oracle = postfix_oracle(ip, addrs + ["nosuch99@pf.test"])
        # Postfix really does what the table above says (else the expectations are wrong,
        # not mxprobe).
        want = {"ok": 250, "unknown": 550, "relay": 554}
        for a, k in cases:
            check(oracle[a][0] == want[k], f"Postfix itself answered {oracle[a]} for {a} ({k})")
        check_helo_restriction(ip, servers.source_ip)

        in_path = os.path.join(work, "list.txt")
        with open(in_path, "w") as f:
            f.write("\n".join(addrs) + "\n")
        n_domain = sum(1 for a in addrs if a.lower().endswith("@" + DOMAIN))
        # Our own Postfix: the lab policy (no rate limits, retries seconds apart).
        lab = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tools",
                           "policy", "lab.toml")
        common = ["--policy", lab, "--dns", dns, "--helo", "probe.mxprobe.test", "--timeout-connect", "3",
                  "--timeout-banner", "5", "--timeout-command", "5", "--timeout-dns", "2"]
        table = {}
        ran = []
        for backend in ("uring", "uv"):
            # Once as users run it, once with --transcript to see the sessions' shape.
            for transcript in (False, True):
                tag = f"[{backend}{' --transcript' if transcript else ''}]"
                out_path = os.path.join(work, f"out-{backend}-{transcript}.jsonl")
                t = time.monotonic()
                p = run([mxprobe, "verify", "--no-cache", "--input", in_path, "--output", out_path, "--format",
                         "jsonl", "--backend", backend, "--no-progress", "--verbose", "--rcpts-per-session",
                         str(RCPTS_PER_SESSION)] + (["--transcript"] if transcript else []) +
                        common)
                took = time.monotonic() - t
                if backend == "uring" and p.returncode == 3 and "event loop" in p.stderr:
                    print(f"SKIP backend uring: {p.stderr.strip()}")
                    break
                check(p.returncode == 0, f"{tag} verify exit {p.returncode}: {p.stderr}")
                loop_name = "io_uring" if backend == "uring" else "libuv"
                check(loop_name in p.stderr.splitlines()[0], f"{tag} loop: {p.stderr}")
                records = [json.loads(line) for line in open(out_path) if line.strip()]
                check(sorted(r["line"] for r in records) == list(range(1, len(addrs) + 1)),
                      f"{tag} not one record per input line: {[r['line'] for r in records]}")
                for r in records:
                    a = addrs[r["line"] - 1]
                    try:
                        expect_record(r, a, kinds[a], ip, oracle)
                    except Fail as e:
                        raise Fail(f"{tag} {e}")
                    table.setdefault(a, {})[backend] = (
                        f"{r['verdict']}/{r['reason']} {r['smtp']['code']} "
                        f"{r['smtp']['enhanced']} catch_all={json.dumps(r['catch_all'])}")
                note = ""
                if transcript:
                    note = f", {check_transcripts(records, n_domain)} SMTP sessions"
                print(f"{tag} {len(records)} records{note}, {took:.2f} s")
            if backend in table.get(addrs[0], {}):
                check_cli(mxprobe, backend, common, ip, oracle)
                check_identity(mxprobe, backend, common, ip, servers.source_ip, in_path, addrs,
                               kinds, oracle, work)
                ran.append(backend)

        check("uv" in ran, "the libuv backend did not run")
        # The verdict table (identical for every backend that ran, or a check above failed).
        for a in addrs:
            check(len(set(table[a].values())) == 1, f"backends disagree on {a}: {table[a]}")
            print(f"  {a:20} {table[a]['uv']}")
        print(f"PASS ({', '.join(ran)}) in {time.monotonic() - t0:.2f} s")
        return 0
    except Fail as e:
        print(f"FAIL: {e}", file=sys.stderr)
        for name in ("master.err", "dnsmasq.err"):
            print(f"--- {name}:\n{read_tail(work, name)}", file=sys.stderr)
        return 1
    finally:
        servers.stop()
        shutil.rmtree(work, ignore_errors=True)


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)  # unwinds through main's finally: servers stop


if __name__ == "__main__":
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    sys.exit(main())
