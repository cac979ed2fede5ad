#!/usr/bin/env bash
# Every SMTP behaviour of a generated scenario, checked with swaks (an independent client) and,
# where swaks cannot see the difference, with rawsmtp.py; then the farm's report.
# Range 127.90-99.0.0/16 (see pick_net in lib.sh).
source "$(dirname "$0")/../lib.sh"

SC=$WORK/scenario.json
REPORT=$WORK/report.json
launch 90 99 --domains 4 --hosts 2 --mailboxes 6 --seed 7 --catch-all-share 0.3 \
  --full-share 0.3 --disabled-share 0.2 --greylist-delay 2 --error-sleep-ms 100 \
  --tarpit-byte-ms 500 --endless-bytes 262144
"$MXFARM" truth "$SC" >"$WORK/truth.csv"
expect_match "$READY_LINE" "^ready dns=127.0.0.1:$DNS_PORT listeners=[0-9]+$" "ready line"

# --- ordinary domains: the farm's RCPT replies agree with the truth file, address by address.
"$PY" - "$SC" >/dev/null <<'EOF' || fail "seed 7 should give a catch-all and full/disabled mailboxes"
import json, sys
s = json.load(open(sys.argv[1]))
ds = [d for d in s["domains"] if d["name"].startswith("d")]
assert any(d.get("catch_all") for d in ds)
st = {v for d in ds for v in d["mailboxes"].values()}
assert {"ok", "full", "full_perm", "disabled"} <= st, st
EOF
for d in d1.test d2.test d3.test d4.test; do
  addrs=$(grep "@$d," "$WORK/truth.csv" | cut -d, -f1 | paste -sd,)
  out=$(sw "$(ip_of "$SC" $d)" --to "$addrs")
  # Pair each RCPT with the code of its reply, then compare with the truth's verdict.
  got=$(awk '/-> RCPT TO:/ {a=$0; sub(/.*TO:</,"",a); sub(/>.*/,"",a)}
             /^<[-*~]+ +[0-9][0-9][0-9][ -]/ && a!="" {c=$2; if (c ~ /^[0-9]+-/) next; print a","substr(c,1,3); a=""}' <<<"$out")
  while IFS=, read -r addr verdict reason; do
    code=$(grep "^$addr," <<<"$got" | cut -d, -f2)
    case $reason in
      accepted | catch_all) want="250" ;;
      mailbox_not_found) want="550|554" ;;
      mailbox_full) want="452|552" ;;
      mailbox_disabled) want="550|554" ;;
      *) fail "unexpected truth $reason for $addr" ;;
    esac
    [[ $code =~ ^($want)$ ]] || fail "$addr: farm answered '$code', truth says $verdict/$reason"
    ok
  done < <(grep "@$d," "$WORK/truth.csv")
done

# --- styles: each family's own texts, one session each.
to="user1@S,nobody@S,full1@S,fullperm1@S,disabled1@S"
out=$(sw "$(ip_of "$SC" postfix.test)" --to "${to//S/postfix.test}")
expect_match "$out" "220 mx.postfix.test ESMTP Postfix" "postfix banner"
expect_match "$out" "550 5.1.1 <nobody@postfix.test>: Recipient address rejected: User unknown" "postfix unknown"
expect_match "$out" "452 4.2.2 .*Mailbox full" "postfix full"
expect_match "$out" "552 5.2.2 " "postfix full_perm"
expect_match "$out" "550 5.2.1 .*disabled" "postfix disabled"
out=$(sw "$(ip_of "$SC" exchange.test)" --to "${to//S/exchange.test}")
expect_match "$out" "220 mx.exchange.test Microsoft ESMTP MAIL Service ready" "exchange banner"
expect_match "$out" "550 5.1.10 RESOLVER.ADR.RecipientNotFound" "exchange unknown"
expect_match "$out" "250 2.1.5 Recipient OK" "exchange accepted"
out=$(sw "$(ip_of "$SC" gmail.test)" --to "${to//S/gmail.test}")
expect_match "$out" "550-5.1.1 The email account that you tried to reach does not exist" "gmail unknown (multi-line)"
expect_match "$out" "550 5.1.1  https://support.google.com/mail/\?p=NoSuchUser" "gmail unknown last line"
expect_match "$out" "452-4.2.2 The recipient's inbox is out of storage space" "gmail full"
expect_match "$out" "550-5.2.1 The email account that you tried to reach is disabled" "gmail disabled"
out=$(sw "$(ip_of "$SC" yahoo.test)" --to "${to//S/yahoo.test}")
expect_match "$out" "554 delivery error: dd This user doesn't have a yahoo.test account" "yahoo unknown"
expect_match "$out" "This mailbox is disabled \(554.30\)" "yahoo disabled"
expect_match "$out" "250 recipient <user1@yahoo.test> ok" "yahoo accepted"

# --- catch-all: any local part is accepted.
out=$(sw "$(ip_of "$SC" catchall.test)" --to "zz-no-such-$RANDOM@catchall.test")
expect_match "$out" "<-  250 2.1.5 OK" "catch-all accepts an unknown address"

# --- relay: a host does not take mail for domains it does not serve.
out=$(sw "$(ip_of "$SC" postfix.test)" --to user1@d1.test)
expect_match "$out" "554 5.7.1 <user1@d1.test>: Relay access denied" "relay denied"

# --- greylisting, keyed on (client IP, sender, recipient), delay 2 s.
gip=$(ip_of "$SC" greylist.test)
t0=$(now_ms)
out=$(sw "$gip" --to user1@greylist.test)
expect_match "$out" "450 4.2.0 <user1@greylist.test>: Recipient address rejected: Greylisted" "greylist first attempt"
out=$(sw "$gip" --to user1@greylist.test)
expect_match "$out" "450 4.2.0" "greylist retry before the delay"
passed=""
for _ in $(seq 1 30); do  # retry like a polite client until the triplet passes
  out=$(sw "$gip" --to user1@greylist.test)
  if grep -q "250 2.1.5 Ok" <<<"$out"; then passed=$(now_ms); break; fi
  expect_match "$out" "450 4.2.0" "greylist while waiting"
  sleep 0.3
done
[[ -n $passed ]] || fail "greylisted recipient never passed"
((passed - t0 >= 2000)) || fail "greylist passed after $((passed - t0)) ms, before its 2 s delay"
ok
out=$(swaks --quit-after RCPT --server "$gip" --from other@client.test --to user1@greylist.test --timeout 3 2>&1 || true)
expect_match "$out" "450 4.2.0" "greylist: another sender is a new triplet"
out=$(sw "$gip" --to full1@greylist.test)
expect_match "$out" "450 4.2.0" "greylist applies before the mailbox status"

# --- slow server: 300 ms banner, 100 ms per reply; still answers.
t0=$(now_ms)
out=$(sw "$(ip_of "$SC" slow.test)" --to user1@slow.test)
t1=$(now_ms)
expect_match "$out" "250 2.1.5 Recipient OK" "slow server answers"
((t1 - t0 >= 700)) || fail "slow server took only $((t1 - t0)) ms (want >= 700)"
ok

# --- tarpit: 500 ms per byte. swaks times out; a raw client gets a few bytes of the banner.
out=$(swaks --quit-after RCPT --server "$(ip_of "$SC" tarpit.test)" --to user1@tarpit.test --timeout 2 2>&1 || true)
expect_match "$out" "Timeout \(2 secs\) waiting for server response" "tarpit times swaks out"
out=$(raw "$(ip_of "$SC" tarpit.test)" 25 --timeout 1.8)
expect_match "$out" "^S: (2|22|220|220 ) \[partial len=[1-4]\]$" "tarpit dribbles the banner"
expect_match "$out" "^TIMEOUT$" "tarpit: no complete reply"

# --- connection limit: 2 per client IP; the third concurrent connection gets 421.
cip=$(ip_of "$SC" connlimit.test)
exec 4<>/dev/tcp/"$cip"/25 5<>/dev/tcp/"$cip"/25
if ! read -r -t 3 l4 <&4 || ! read -r -t 3 l5 <&5; then fail "connlimit: no banners"; fi
expect_match "$l4$l5" "220 mx.connlimit.test" "connlimit: two connections held"
out=$(sw "$cip" --to user1@connlimit.test)
expect_match "$out" "421 4.7.0 mx.connlimit.test Error: too many connections from 127.0.0.1" "connlimit 421"
# QUIT the two held sessions and read to EOF: the farm has closed them once we see EOF.
printf 'QUIT\r\n' >&4
printf 'QUIT\r\n' >&5
if ! timeout 3 cat <&4 >/dev/null || ! timeout 3 cat <&5 >/dev/null; then
  fail "connlimit: sessions did not close"
fi
exec 4>&- 5>&-
out=$(sw "$cip" --to user1@connlimit.test)
expect_match "$out" "250 2.1.5 Ok" "connlimit: admitted again after the others closed"

# --- connection rate: 3 per 10 s per client IP; the 4th gets 421 (Gmail's 4.7.28).
rip=$(ip_of "$SC" connrate.test)
for i in 1 2 3; do
  out=$(sw "$rip" --to user1@connrate.test)
  expect_match "$out" "250 2.1.5 OK" "connrate connection $i"
done
out=$(sw "$rip" --to user1@connrate.test)
expect_match "$out" "421-4.7.28 \[127.0.0.1\] Our system has detected an unusual rate" "connrate 421"

# --- blocklists: every MX of blocked.test refuses at RCPT; blocked-banner.test at connect.
for n in 0 1; do
  out=$(sw "$(ip_of "$SC" blocked.test $n)" --to user1@blocked.test)
  expect_match "$out" "554 5.7.1 Service unavailable; Client host \[127.0.0.1\] blocked using zen.spamhaus.org" "blocked MX $n"
done
bip=$(ip_of "$SC" blocked-banner.test)
out=$(sw "$bip" --to user1@blocked-banner.test)
expect_match "$out" "553 5.7.1 \[BL21\] Connections will not be accepted from 127.0.0.1" "blocked banner"
expect_no_match "$out" "RCPT TO" "blocked banner: no transaction"
out=$(raw "$bip" 25 "EHLO client.test" "QUIT")
expect_match "$out" "S: 503 5.5.1 Bad sequence of commands" "after a 5xx greeting only QUIT works (RFC 5321 3.1)"
expect_match "$out" "S: 221 " "QUIT after a 5xx greeting"

# --- Postfix error limits: after 10 errors every reply waits 100 ms; the 21st command gets 421.
eip=$(ip_of "$SC" errlimit.test)
bad=$(for i in $(seq 1 22); do printf 'bad%d@errlimit.test,' "$i"; done)
t0=$(now_ms)
out=$(sw "$eip" --to "${bad%,}")
t1=$(now_ms)
expect_eq "$(grep -c '550 5.1.1' <<<"$out")" 20 "errlimit: 20 rejected RCPTs"
expect_match "$out" "421 4.7.0 mx.errlimit.test Error: too many errors" "errlimit: dropped at the hard limit"
((t1 - t0 >= 1000)) || fail "errlimit: 10 delayed replies took only $((t1 - t0)) ms"
ok

# --- recipient limit: 3 RCPTs per transaction, then 452 4.5.3.
out=$(sw "$(ip_of "$SC" rcptlimit.test)" --to user1@rcptlimit.test,user2@rcptlimit.test,x@rcptlimit.test,y@rcptlimit.test,z@rcptlimit.test)
expect_eq "$(grep -c '452 4.5.3 Too many recipients' <<<"$out")" 2 "rcptlimit: RCPTs 4 and 5"
expect_eq "$(grep -c '250 2.1.5 Recipient OK' <<<"$out")" 2 "rcptlimit: first RCPTs answered"

# --- EHLO extensions: PIPELINING and STARTTLS advertised or not.
out=$(sw "$(ip_of "$SC" d1.test)" --to user1@d1.test)
expect_match "$out" "250-PIPELINING" "PIPELINING advertised by default"
expect_no_match "$out" "STARTTLS" "STARTTLS not advertised by default"
out=$(sw "$(ip_of "$SC" nopipelining.test)" --to user1@nopipelining.test)
expect_no_match "$out" "PIPELINING" "nopipelining"
expect_match "$out" "250 2.1.5 Ok" "nopipelining still answers"
sip=$(ip_of "$SC" starttls.test)
out=$(sw "$sip" --to user1@starttls.test)
expect_match "$out" "250-STARTTLS" "STARTTLS advertised"
out=$(raw "$sip" 25 "EHLO client.test" "STARTTLS" "MAIL FROM:<a@client.test>" "QUIT")
expect_match "$out" "S: 454 4.7.0 TLS not available due to local problem" "STARTTLS refused"
expect_match "$out" "S: 250 2.1.0 OK" "session goes on in clear text"

# --- EHLO refused: swaks falls back to HELO.
out=$(sw "$(ip_of "$SC" heloonly.test)" --to user1@heloonly.test)
expect_match "$out" "502 5.5.2 Error: command not recognized" "EHLO refused"
expect_match "$out" "-> HELO " "client fell back to HELO"
expect_match "$out" "250 2.1.5 Ok" "HELO-only server answers RCPT"

# --- disconnects: close before the banner, close after MAIL, reset after RCPT.
out=$(sw "$(ip_of "$SC" drop-connect.test)" --to user1@drop-connect.test)
expect_match "$out" "Remote host closed connection unexpectedly" "drop at connect"
expect_no_match "$out" "<-  220" "drop at connect: no banner"
dip=$(ip_of "$SC" drop-mail.test)
out=$(sw "$dip" --to user1@drop-mail.test)
expect_match "$out" "-> MAIL FROM" "drop-mail: MAIL sent"
expect_match "$out" "Remote host closed connection unexpectedly" "drop after MAIL"
out=$(raw "$dip" 25 "EHLO client.test" "MAIL FROM:<a@client.test>")
expect_match "$out" "^EOF$" "drop after MAIL is a clean close (FIN)"
rip=$(ip_of "$SC" reset-rcpt.test)
out=$(sw "$rip" --to user1@reset-rcpt.test)
expect_match "$out" "-> RCPT TO" "reset-rcpt: RCPT sent"
expect_match "$out" "Remote host closed connection unexpectedly" "reset after RCPT"
out=$(raw "$rip" 25 "EHLO client.test" "MAIL FROM:<a@client.test>" "RCPT TO:<user1@reset-rcpt.test>")
expect_match "$out" "^RESET$" "reset after RCPT is an RST"

# --- broken replies: garbage banner, endless EHLO reply, over-long EHLO line.
gip=$(ip_of "$SC" garbage.test)
out=$(swaks --quit-after RCPT --server "$gip" --to user1@garbage.test --timeout 2 2>&1 || true)
expect_no_match "$out" "<-  220" "garbage: no greeting for swaks"
expect_no_match "$out" "-> MAIL" "garbage: swaks never got to MAIL"
out=$(raw "$gip" 25)
expect_match "$out" "^S: \*\*\* .* garbage, not SMTP" "garbage bytes instead of a banner"
eip=$(ip_of "$SC" endless.test)
out=$(swaks --quit-after RCPT --server "$eip" --to user1@endless.test --timeout 2 2>&1 || true)
expect_match "$out" "^<[-*~]+ +250-mx.endless.test endless reply line" "endless: continuation lines"
expect_no_match "$out" "-> MAIL" "endless: swaks never got to MAIL"
out=$(raw "$eip" 25 "EHLO client.test")
expect_match "$out" "^EOF$" "endless: farm closes after its byte limit"
expect_eq "$(grep -c '^S: 250-' <<<"$out")" $((262144 / 64)) "endless: 256 KiB of 64-byte lines"
out=$(sw "$(ip_of "$SC" overlong.test)" --to user1@overlong.test)
expect_match "$out" "<-  250 xxxxxxxx" "overlong line seen by swaks"
out=$(raw "$(ip_of "$SC" overlong.test)" 25 --drain "EHLO client.test")
expect_match "$out" "^S: 250 xxx+ \[len=1048580\]$" "overlong: a 1 MiB line"
expect_match "$out" "^EOF$" "overlong: then the farm closes"

# --- failover: the primary refuses connections, the secondary answers.
out=$(sw "$(ip_of "$SC" failover.test 0)" --to user1@failover.test)
expect_match "$out" "Connection refused" "failover primary refuses"
out=$(sw "$(ip_of "$SC" failover.test 1)" --to user1@failover.test)
expect_match "$out" "250 2.1.5 Ok" "failover secondary answers"

# --- A-only domain: the host at the domain's own address answers.
out=$(sw "$(ip_of "$SC" aonly.test)" --to user1@aonly.test,nobody@aonly.test)
expect_match "$out" "220 aonly.test ESMTP" "A-only host banner"
expect_match "$out" "550 5.1.1 <nobody@aonly.test>" "A-only host knows its mailboxes"

# --- the truth file follows the documented rules for every special domain.
declare -A want=(
  [catchall.test]="risky,catch_all" [greylist.test]="deliverable,accepted"
  [slow.test]="deliverable,accepted" [tarpit.test]="unknown,timeout"
  [connlimit.test]="deliverable,accepted" [connrate.test]="deliverable,accepted"
  [blocked.test]="unknown,blocked" [blocked-banner.test]="unknown,blocked"
  [errlimit.test]="deliverable,accepted" [rcptlimit.test]="deliverable,accepted"
  [heloonly.test]="deliverable,accepted" [drop-connect.test]="unknown,protocol_error"
  [drop-mail.test]="unknown,protocol_error" [reset-rcpt.test]="unknown,protocol_error"
  [garbage.test]="unknown,protocol_error" [endless.test]="unknown,protocol_error"
  [overlong.test]="unknown,protocol_error" [failover.test]="deliverable,accepted"
  [aonly.test]="deliverable,accepted" [nullmx.test]="undeliverable,null_mx"
  [nomx.test]="undeliverable,no_mail_server" [nxdomain.test]="undeliverable,no_such_domain"
  [servfail.test]="unknown,dns_error" [dnstimeout.test]="unknown,dns_error")
for d in "${!want[@]}"; do
  expect_match "$(cat "$WORK/truth.csv")" "^user1@$d,${want[$d]}$" "truth for user1@$d"
done
expect_match "$(cat "$WORK/truth.csv")" "^full1@greylist.test,risky,mailbox_full$" "truth: greylisted full mailbox"
expect_match "$(cat "$WORK/truth.csv")" "^disabled1@postfix.test,undeliverable,mailbox_disabled$" "truth: disabled"
expect_match "$(cat "$WORK/truth.csv")" "^nobody1@postfix.test,undeliverable,mailbox_not_found$" "truth: unknown user"

# --- the report, written on SIGTERM.
stop_farm
r() { report_get "$REPORT" "$1"; }
expect_eq "$(r "r['total']['data_commands']")" 0 "no DATA was sent"
expect_eq "$(r "r['mx']['mx.connlimit.test']['limit_rejects']")" 1 "connlimit rejects"
expect_eq "$(r "r['mx']['mx.connlimit.test']['peak_concurrent']")" 3 "connlimit peak concurrency"
expect_eq "$(r "r['mx']['mx.connrate.test']['connections']")" 4 "connrate connections"
expect_eq "$(r "r['mx']['mx.connrate.test']['limit_rejects']")" 1 "connrate rejects"
expect_eq "$(r "r['mx']['mx.connrate.test']['peak_connections_per_second'] >= 1")" True "burst counted"
expect_eq "$(r "r['mx']['mx.errlimit.test']['replies']['421']")" 1 "errlimit 421 counted"
expect_eq "$(r "r['mx']['mx.errlimit.test']['commands']['RCPT']")" 21 "errlimit RCPTs received"
expect_eq "$(r "r['mx']['mx.garbage.test']['broken_replies']")" 2 "garbage replies counted"
expect_eq "$(r "r['rcpt_by_address']['user1@greylist.test'] >= 4")" True "RCPTs per address"
expect_eq "$(r "r['rcpt_by_domain']['errlimit.test']")" 21 "RCPTs per domain"
expect_eq "$(r "r['clients']['127.0.0.1']['connections'] == r['total']['connections']")" True "one client IP"
expect_eq "$(r "'mx1.failover.test' in r['mx']")" False "a refusing host has no listener"
echo "PASS smtp_behaviours: $CHECKS checks"
