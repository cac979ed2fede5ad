#!/usr/bin/env bash
# mxfarm run's life: start-up time with 1,000 domains over 50 MX addresses (< 2 s optimised),
# report on SIGUSR1 and on SIGTERM, dnsmasq stopped with the farm (also on kill -9), clear
# failures when a port is taken or the scenario is wrong.
# Range 127.110-119.0.0/16 (see pick_net in lib.sh).
source "$(dirname "$0")/../lib.sh"

SC=$WORK/big.json
REPORT=$WORK/report.json

# --- start-up: from exec to the ready line (dnsmasq answering, 50 listeners bound).
write_big() {
  "$MXFARM" gen --domains 1000 --hosts 50 --special none --base-ip "$BASE" --dns-port "$DNS_PORT" >"$SC"
  t0=$(now_ms)
}
farm_in_band 110 119 write_big
startup=$(($(now_ms) - t0))
limit=${MXFARM_STARTUP_LIMIT_MS:-2000}
echo "startup with 1000 domains over 50 MX addresses: ${startup} ms (limit ${limit} ms)"
((startup < limit)) || fail "start-up took ${startup} ms (limit ${limit} ms)"
ok
expect_eq "$READY_LINE" "ready dns=127.0.0.1:$DNS_PORT listeners=50" "ready line"
expect_match "$(dig @127.0.0.1 -p "$DNS_PORT" +short MX d777.test)" "^10 mx27.farm.test.$" "a domain among 1000"
out=$(sw "$(ip_of "$SC" d1000.test)" --to user1@d1000.test)
expect_match "$(grep -A1 -- '-> RCPT TO' <<<"$out")" "^<[-*~]+ +[245][0-9][0-9] " "a host among 50 answers RCPT"

# dnsmasq is our child, and its configuration file is gone once the farm is ready.
dns_pid=$(pgrep -P "$FARM_PID" -x dnsmasq) || fail "no dnsmasq child"
conf=$(tr '\0' '\n' </proc/"$dns_pid"/cmdline | sed -n 's/^--conf-file=//p')
[[ -n $conf && ! -e $conf ]] || fail "dnsmasq configuration $conf left behind"
ok

# --- SIGUSR1 writes the report without stopping anything.
[[ ! -e $REPORT ]] || fail "report before SIGUSR1"
kill -USR1 "$FARM_PID"
for _ in $(seq 1 100); do [[ -s $REPORT ]] && break; sleep 0.05; done
expect_eq "$(report_get "$REPORT" "r['total']['connections']")" 1 "report on SIGUSR1"
expect_eq "$(report_get "$REPORT" "len(r['mx'])")" 50 "report lists every MX"
kill -0 "$FARM_PID" || fail "SIGUSR1 stopped the farm"
ok

# --- a second farm on the same DNS port fails fast and says why.
"$MXFARM" gen --domains 2 --hosts 1 --special none --base-ip "127.$NET.100.0" --dns-port "$DNS_PORT" >"$WORK/other.json"
rc=0
timeout 10 "$MXFARM" run "$WORK/other.json" --report "$WORK/other-report.json" >/dev/null 2>"$WORK/other.err" || rc=$?
expect_eq "$rc" 1 "second farm on a taken DNS port exits 1"
expect_match "$(cat "$WORK/other.err")" "dnsmasq exited" "taken DNS port reported"
# ... and one on the same SMTP addresses.
rc=0
timeout 10 "$MXFARM" run "$SC" --dns-port $((DNS_PORT + 1)) --report "$WORK/other-report.json" >/dev/null 2>"$WORK/other.err" || rc=$?
expect_eq "$rc" 1 "second farm on taken SMTP addresses exits 1"
expect_match "$(cat "$WORK/other.err")" "listen on 127.$NET.0.1:25 \(mx1.farm.test\): address already in use" "taken SMTP address reported"
out=$(dig @127.0.0.1 -p $((DNS_PORT + 1)) +time=1 +tries=1 MX d1.test 2>&1 || true)
expect_no_match "$out" "status:" "the failed farm's dnsmasq was stopped"

# --- SIGTERM: exit 0, dnsmasq gone, final report.
rm -f "$REPORT"
stop_farm
kill -0 "$dns_pid" 2>/dev/null && fail "dnsmasq $dns_pid survived SIGTERM"
ok
expect_eq "$(report_get "$REPORT" "r['total']['commands']['RCPT']")" 1 "final report"

# --- SIGINT works like SIGTERM; `run --dns-port` overrides the scenario's port.
start_farm "$SC" "$REPORT" --dns-port $((DNS_PORT + 1)) || fail "restart on port $((DNS_PORT + 1))"
expect_eq "$READY_LINE" "ready dns=127.0.0.1:$((DNS_PORT + 1)) listeners=50" "--dns-port override"
expect_match "$(dig @127.0.0.1 -p $((DNS_PORT + 1)) +short MX d1.test)" "^10 mx1.farm.test.$" "DNS on the override port"
dns_pid=$(pgrep -P "$FARM_PID" -x dnsmasq) || fail "no dnsmasq child"
kill -INT "$FARM_PID"
rc=0
wait "$FARM_PID" || rc=$?
FARM_PID=""
expect_eq "$rc" 0 "mxfarm exit status after SIGINT"
kill -0 "$dns_pid" 2>/dev/null && fail "dnsmasq $dns_pid survived SIGINT"
ok

# --- kill -9: dnsmasq dies with the farm (PR_SET_PDEATHSIG).
start_farm "$SC" "$REPORT" || fail "restart"
dns_pid=$(pgrep -P "$FARM_PID" -x dnsmasq) || fail "no dnsmasq child"
kill -KILL "$FARM_PID"
wait "$FARM_PID" 2>/dev/null || true
FARM_PID=""
timeout 3 tail --pid="$dns_pid" -f /dev/null 2>/dev/null || true  # returns when it exits
kill -0 "$dns_pid" 2>/dev/null && fail "dnsmasq $dns_pid outlived a killed farm"
ok

# --- a scenario with a typo is refused with the field's name.
printf '{"hosts":[{"name":"mx.x.test","ip":"127.%d.200.1","listen_typo":true}]}' "$NET" >"$WORK/bad.json"
rc=0
"$MXFARM" run "$WORK/bad.json" 2>"$WORK/bad.err" || rc=$?
expect_eq "$rc" 2 "bad scenario exit status"
expect_match "$(cat "$WORK/bad.err")" 'hosts\[0\]: unknown field "listen_typo"' "bad scenario message"
echo "PASS lifecycle: $CHECKS checks (startup ${startup} ms)"
