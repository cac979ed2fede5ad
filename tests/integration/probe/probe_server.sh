#!/usr/bin/env bash
# `mxprobe probe-server` against mxfarm servers whose behaviour is set by the scenario: the
# report (--json) must find each one's limits — concurrent connections (connlimit: 2), the
# connection rate (connrate: 3 per 5 s), error limits (errlimit: slower after 10 bad RCPTs,
# disconnect after 20), greylisting and its delay (2 s), catch-all, a tarpit, STARTTLS offered,
# a server that refuses us at the greeting — and a plain server must show none of them. A host
# with both a connection-rate and a concurrency limit gets both measured (the rate's window
# waited out); an IP target works as a name does; a closed port says "not measured" for every
# figure and exits 1.
# Usage: probe_server.sh [uring|uv]. Env MXFARM, MXPROBE. Range 127.120-129.0.0/16 (its own band,
# see pick_net in tests/integration/lib.sh).
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
BACKEND=${1:-auto}
source "$(dirname "$0")/../lib.sh"
skip_without_uring "$BACKEND"

# both.test: a host of its own with the connlimit host's concurrency limit (2) and the connrate
# host's rate limit (3 per 5 s). The window is short because the prober waits it out (1, 2, 4 s
# of quiet: every attempt counts, so a 10 s window took 1 + 2 + 4 + 8 s and then 16 s more to
# tell the two limits apart on both.test); still longer than the samples take under ASan.
write_scenario() {
  "$MXFARM" gen --domains 1 --hosts 1 --mailboxes 3 --catch-all-share 0 \
    --special styles,catchall,greylist,tarpit,connlimit,connrate,errlimit,starttls,blocked-banner \
    --greylist-delay 2 --error-sleep-ms 300 --tarpit-byte-ms 4 --conn-limit 2 --rate-count 3 \
    --rate-window 5 --base-ip "$BASE" --dns-port "$DNS_PORT" >"$WORK/gen.json"
  jq --arg ip "127.$NET.0.200" '.hosts += [{"ip": $ip, "name": "mx.both.test", "port": 25,
      "style": "postfix", "max_conn_per_ip": 2, "conn_rate": {"count": 3, "window_s": 5}}]
    | .domains += [{"dns": "mx", "name": "both.test", "style": "postfix",
      "mailboxes": {"user1": "ok"}, "mx": [{"host": "mx.both.test", "pref": 10}]}]' \
    "$WORK/gen.json" >"$SC"
}
farm_in_band 120 129 write_scenario

# probe NAME DOMAIN [options]: the JSON report in $WORK/NAME.json; the exit status must be
# $WANT_RC (default 0); $SAMPLES plain sessions (default 3).
probe() {
  local name=$1 domain=$2 rc=0
  shift 2
  "$MXPROBE" probe-server "$domain" --json --backend "$BACKEND" --dns "127.0.0.1:$DNS_PORT" \
    --helo probe.client.test --samples "${SAMPLES:-3}" --max-connections 4 --max-rate 4 \
    --rate-step 0.5 --timeout 5 --greylist-step 0.5 --greylist-wait 15 --max-time 120 "$@" \
    >"$WORK/$name.json" 2>"$WORK/$name.err" || rc=$?
  [[ $rc == "${WANT_RC:-0}" ]] || fail "$name: exit $rc, want ${WANT_RC:-0} ($(cat "$WORK/$name.err"))"
}
get() { jq -c "$2" "$WORK/$1.json"; }

probe plain postfix.test --bad-rcpts 5
expect_eq "$(get plain .host)" '"mx.postfix.test"' "plain: the domain's MX"
expect_match "$(get plain .banner)" '^"220 ' "plain: greeting"
expect_eq "$(get plain .catch_all)" false "plain: not catch-all"
expect_eq "$(get plain .greylisting)" false "plain: no greylisting"
expect_eq "$(get plain .max_concurrent_connections)" null "plain: no concurrency limit up to 4"
expect_eq "$(get plain .concurrent_connections_tried)" 4 "plain: 4 held at once"
expect_eq "$(get plain .connection_rate_limited)" false "plain: no rate limit"
expect_eq "$(get plain .connection_rate_tried_per_s)" 4 "plain: ramp up to 4/s"
expect_eq "$(get plain .error_limit.delay_after)" null "plain: no error slow-down"
expect_eq "$(get plain .tarpit)" false "plain: no tarpit"
expect_eq "$(get plain .capabilities.pipelining)" true "plain: PIPELINING"
expect_eq "$(get plain .capabilities.enhancedstatuscodes)" true "plain: ENHANCEDSTATUSCODES"
expect_eq "$(get plain '.latency.rcpt_to.count')" 3 "plain: RCPT latency from 3 samples"
for stage in connect banner ehlo mail_from rcpt_to quit; do
  expect_match "$(get plain ".latency.$stage.p50_ms")" '^[0-9.e-]+$' "plain: $stage latency"
done

probe connlimit connlimit.test --bad-rcpts 5
expect_eq "$(get connlimit .max_concurrent_connections)" 2 "connlimit: 2 concurrent connections"
expect_match "$(get connlimit .concurrency_refusal)" '^"421 ' "connlimit: refused with 421"
expect_eq "$(get connlimit .connection_rate_limited)" false "connlimit: no rate limit"

# The rate limit is measured and waited out: the error-limit test still runs after it.
probe connrate connrate.test --bad-rcpts 5 --no-concurrency
expect_eq "$(get connrate .connection_rate_limited)" true "connrate: rate-limited"
expect_eq "$(get connrate .connection_rate_refused_after)" 3 "connrate: refused after 3"
expect_match "$(get connrate .connection_rate_accepted_again_s)" '^[0-9]' \
  "connrate: accepted again after a wait"
expect_eq "$(get connrate .error_limit.bad_rcpts_tried)" 5 "connrate: error limit measured after it"
expect_eq "$(get connrate '.measured | index("error_limit") != null')" true \
  "connrate: error_limit among the measured"
expect_eq "$(get connrate .skipped)" '["concurrency"]' "connrate: concurrency skipped"

# Both limits on one host: neither hides the other.
probe both both.test --bad-rcpts 5
expect_eq "$(get both .connection_rate_limited)" true "both: rate limit"
expect_eq "$(get both .connection_rate_refused_after)" 3 "both: rate refused after 3"
expect_eq "$(get both .max_concurrent_connections)" 2 "both: concurrency limit 2"
expect_match "$(get both .concurrency_refusal)" '^"421 ' "both: concurrency refused with 421"
expect_eq "$(get both '.measured | sort')" \
  '["capabilities","catch_all","concurrency","connection_rate","error_limit","greylisting","latency","tarpit"]' \
  "both: every figure measured"
expect_eq "$(get both .not_measured)" '{}' "both: nothing left out"

# Only the error limit: the ramps have nothing to find on this host (plain shows them).
probe errlimit errlimit.test --bad-rcpts 25 --no-concurrency --no-rate
expect_eq "$(get errlimit .error_limit.delay_after)" 10 "errlimit: slower after 10 errors"
expect_match "$(get errlimit .error_limit.delay_ms)" '^(2[5-9][0-9]|[3-9][0-9][0-9])' \
  "errlimit: about 300 ms slower"
expect_eq "$(get errlimit .error_limit.disconnect_after)" 20 "errlimit: disconnect after 20"

probe greylist greylist.test --bad-rcpts 5 --no-concurrency --no-rate
expect_eq "$(get greylist .greylisting)" true "greylist: detected"
expect_match "$(get greylist .greylisting_delay_s)" '^[2-4]\.' "greylist: passed after 2-4 s"
expect_eq "$(get greylist .catch_all)" false "greylist: then not catch-all"
# Retries every 0.5 s: the report says between which two retries the delay ended.
expect_eq "$(get greylist '.greylisting_retries >= 3')" true "greylist: passed on a later retry"
expect_eq "$(get greylist '.greylisting_delay_min_s < .greylisting_delay_s')" true \
  "greylist: the delay's lower bound"
# One retry after 3 s: what was observed, not the step, and the delay as a bound.
"$MXPROBE" probe-server greylist.test --backend "$BACKEND" --dns "127.0.0.1:$DNS_PORT" \
  --samples 1 --greylist-step 3 --no-concurrency --no-rate --bad-rcpts 0 \
  >"$WORK/grey.txt" 2>/dev/null || fail "greylist text report: exit $?"
expect_match "$(cat "$WORK/grey.txt")" \
  "greylisting +yes \(45[0-9] [^)]*\), passed on the first retry, after 3\.[0-9] s; the server's delay is at most 3\.[0-9] s" \
  "greylist text: the observed pass"

probe catchall catchall.test --no-concurrency --no-rate --bad-rcpts 0
expect_eq "$(get catchall .catch_all)" true "catchall: detected"

# One session shows the slow replies (each byte 4 ms late): three took 3.6 s more.
SAMPLES=1 probe tarpit tarpit.test --no-concurrency --no-rate --bad-rcpts 0 --tarpit-ms 100
expect_eq "$(get tarpit .tarpit)" true "tarpit: detected"

probe starttls starttls.test --no-concurrency --no-rate --bad-rcpts 0
expect_eq "$(get starttls .capabilities.starttls)" true "starttls: offered"
expect_eq "$(get plain .capabilities.starttls)" false "plain: no STARTTLS"

WANT_RC=1 probe blocked blocked-banner.test --bad-rcpts 5
expect_eq "$(get blocked .connections)" 1 "blocked: one connection, then no more"
expect_match "$(get blocked .notes)" 'refused our first connection: 553' "blocked: says why"
expect_eq "$(get blocked .connection_rate_limited)" false "blocked: not a rate limit"
expect_eq "$(get blocked .measured)" '[]' "blocked: nothing measured"

# An IP target (the form docs/probe.md shows) works as the host name does.
MX_IP=$(jq -r '.hosts[] | select(.name == "mx.postfix.test") | .ip' "$SC")
probe byip "$MX_IP" --domain postfix.test --bad-rcpts 5 --no-rate
expect_eq "$(get byip .address)" "\"$MX_IP:25\"" "by IP: the address"
expect_match "$(get byip .banner)" '^"220 ' "by IP: greeted"
expect_eq "$(get byip .catch_all)" false "by IP: not catch-all"
expect_eq "$(get byip '.duration_s > 0')" true "by IP: a positive duration"
expect_eq "$(get byip .notes)" '[]' "by IP: no refusal"

# A closed port: every figure "not measured" (never "no"), which failure it was, exit 1.
CLOSED=127.$NET.0.250
WANT_RC=1 probe closed "$CLOSED" --domain postfix.test
expect_eq "$(get closed .measured)" '[]' "closed: nothing measured"
expect_eq "$(get closed '.not_measured | keys | length')" 8 "closed: all 8 figures not measured"
expect_match "$(get closed .not_measured.greylisting)" 'connection refused' "closed: refused, said"
rc=0
"$MXPROBE" probe-server "$CLOSED" --domain postfix.test --backend "$BACKEND" --timeout 5 \
  >"$WORK/closed.txt" 2>/dev/null || rc=$?
expect_eq "$rc" 1 "closed text: exit 1"
for k in greylisting tarpit catch-all 'concurrent connections' 'connection rate' 'error limits'; do
  expect_match "$(grep "^$k " "$WORK/closed.txt")" "^$k +not measured \(no connection accepted: connection refused" \
    "closed text: $k not measured"
done
expect_match "$(grep '^duration\|^connections' "$WORK/closed.txt")" ' in [0-9]' "closed text: no negative time"
expect_no_match "$(cat "$WORK/closed.txt")" ' in -' "closed text: no negative duration"

# Text output: the same facts for people.
"$MXPROBE" probe-server connlimit.test --backend "$BACKEND" --dns "127.0.0.1:$DNS_PORT" --samples 1 --no-rate \
  --bad-rcpts 0 --max-connections 4 >"$WORK/text.txt" 2>/dev/null || fail "text report"
expect_match "$(cat "$WORK/text.txt")" '^concurrent connections +2 accepted, the next refused' \
  "text: concurrency line"
rm -f "$WORK/report.json"
kill -USR1 "$FARM_PID"
for _ in $(seq 100); do [[ -s $WORK/report.json ]] && break; sleep 0.05; done
expect_eq "$(jq '.total.data_commands' "$WORK/report.json")" 0 "never DATA"
echo "probe_server ($BACKEND): $CHECKS checks passed"
