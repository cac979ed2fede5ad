// Drives npm's deep-email-validator (pinned in package.json) over an address list, at a fixed
// number of checks in flight, against the DNS server given (mxfarm's dnsmasq), and writes one
// JSON line per address: {email, valid, level, detail, verdict, reason}, where verdict/reason are
// its answer mapped to mxprobe's vocabulary (see MAPPING below and docs/performance.md).
//
// Usage: node deep_email_validator.mjs DNS_IP:PORT CONCURRENCY INPUT(one address per line) OUTPUT
import dns from 'node:dns';
import fs from 'node:fs';
import { validate } from 'deep-email-validator';

const [dnsServer, concArg, input, output] = process.argv.slice(2);
if (!output) {
  console.error('usage: node deep_email_validator.mjs DNS_IP:PORT CONCURRENCY INPUT OUTPUT');
  process.exit(2);
}
// The library resolves MX with dns.resolveMx (the servers set here), then connects to port 25
// of the MX host *name*, which net resolves with dns.lookup (getaddrinfo: /etc/hosts and
// /etc/resolv.conf, which know nothing of the farm). Make lookup ask the same server (A only).
dns.setServers([dnsServer]);
dns.lookup = (host, opts, cb) => {
  if (typeof opts === 'function') cb = opts, opts = {};
  dns.resolve4(host, (err, addrs) => {
    if (err) return cb(err);
    if (opts && opts.all) return cb(null, addrs.map((a) => ({ address: a, family: 4 })));
    cb(null, addrs[0], 4);
  });
};

// MAPPING of its answer to our verdicts. `valid: true` means its RCPT got a 2xx: deliverable.
// `valid: false` names the first failed level: regex (syntax), mx (no MX record, or the MX
// lookup failed: it does not tell them apart), smtp (connection, timeout or any non-2xx reply;
// a 550 is reported as "Mailbox not found.", other codes by a canned text). The library's user
// gets "invalid" for all of those, so the strict mapping is undeliverable for every one; the
// lenient mapping keeps undeliverable for syntax, no MX and 550, and calls every other SMTP
// failure unknown (what a careful user might do with "SMTP Error: ... try again later").
function mapped(r) {
  if (r.valid) return { verdict: 'deliverable', reason: 'accepted', lenient: 'deliverable' };
  const detail = (r.validators[r.reason] || {}).reason || '';
  if (r.reason === 'regex') return { verdict: 'undeliverable', reason: 'invalid_syntax', lenient: 'undeliverable' };
  if (r.reason === 'mx') return { verdict: 'undeliverable', reason: 'no_mail_server', lenient: 'undeliverable' };
  if (detail === 'Mailbox not found.')
    return { verdict: 'undeliverable', reason: 'mailbox_not_found', lenient: 'undeliverable' };
  return { verdict: 'undeliverable', reason: 'smtp_other', lenient: 'unknown' };
}

const emails = fs.readFileSync(input, 'utf8').split('\n').filter((l) => l.length > 0);
const conc = Math.max(1, Number(concArg));
const out = fs.createWriteStream(output);
let next = 0;
async function worker() {
  while (next < emails.length) {
    const email = emails[next++];
    const t0 = process.hrtime.bigint();
    let r;
    try {
      r = await validate({ email, validateTypo: false, validateDisposable: false, sender: 'bench@mxprobe.test' });
    } catch (e) {
      r = { valid: false, reason: 'smtp', validators: { smtp: { valid: false, reason: String(e) } } };
    }
    const m = mapped(r);
    const detail = r.valid ? '' : (r.validators[r.reason] || {}).reason || '';
    out.write(JSON.stringify({ email, valid: r.valid, level: r.reason || null, detail, ...m,
      elapsed_ms: Number(process.hrtime.bigint() - t0) / 1e6 }) + '\n');
  }
}
await Promise.all(Array.from({ length: Math.min(conc, emails.length) }, worker));
await new Promise((res) => out.end(res));
