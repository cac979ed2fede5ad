#!/usr/bin/env bash
# `mxprobe probe-server` against mxfarm servers whose behaviour is set by the scenario: the
# report (--json) must find each one's limits — concurrent connections (connlimit: 2), the
# connection rate (connrate: 3 per 10 s), error limits (errlimit: slower after 10 bad RCPTs,
# disconnect after 20), greylisting and its delay (2 s), catch-all, a tarpit, STARTTLS offered,
# a server that refuses us at the greeting — and a plain server must show none of them.
# Env MXFARM, MXPROBE. Range 127.120-129.0.0/16 (its own band, see pick_net in
# tests/integration/lib.sh).
MXPROBE=${MXPROBE:?MXPROBE must name the mxprobe binary}
source "$(dirname "$0")/../lib.sh"

SC=$WORK/sc.json
launch 120 129 --domains 1 --hosts 1 --mailboxes 3 --catch-all-share 0 \
  --special styles,catchall,greylist,tarpit,connlimit,connrate,errlimit,starttls,blocked-banner \
  --greylist-delay 2 --error-sleep-ms 300 --tarpit-byte-ms 4 --conn-limit 2 --rate-count 3 \
  --rate-window 10

# probe NAME DOMAIN [options]: the JSON report in $WORK/NAME.json.
probe() {
  local name=$1 domain=$2
  shift 2
  "$MXPROBE" probe-server "$domain" --json --dns "127.0.0.1:$DNS_PORT" --helo probe.client.test \
    --samples 3 --max-connections 4 --max-rate 4 --rate-step 0.5 --timeout 5 \
    --greylist-step 0.5 --greylist-wait 15 "$@" >"$WORK/$name.json" 2>"$WORK/$name.err" ||
    fail "$name: exit $? ($(cat "$WORK/$name.err"))"
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

probe connrate connrate.test --bad-rcpts 5
expect_eq "$(get connrate .connection_rate_limited)" true "connrate: rate-limited"
expect_eq "$(get connrate .connection_rate_refused_after)" 3 "connrate: refused after 3"
expect_match "$(get connrate .notes)" 'stopped' "connrate: stopped probing at the first refusal"
expect_eq "$(get connrate .connections)" 4 "connrate: no connection after the refusal"

probe errlimit errlimit.test --bad-rcpts 25
expect_eq "$(get errlimit .error_limit.delay_after)" 10 "errlimit: slower after 10 errors"
expect_match "$(get errlimit .error_limit.delay_ms)" '^(2[5-9][0-9]|[3-9][0-9][0-9])' \
  "errlimit: about 300 ms slower"
expect_eq "$(get errlimit .error_limit.disconnect_after)" 20 "errlimit: disconnect after 20"

probe greylist greylist.test --bad-rcpts 5
expect_eq "$(get greylist .greylisting)" true "greylist: detected"
expect_match "$(get greylist .greylisting_delay_s)" '^[2-4]\.' "greylist: passed after 2-4 s"
expect_eq "$(get greylist .catch_all)" false "greylist: then not catch-all"

probe catchall catchall.test --no-concurrency --no-rate --bad-rcpts 0
expect_eq "$(get catchall .catch_all)" true "catchall: detected"

probe tarpit tarpit.test --no-concurrency --no-rate --bad-rcpts 0 --tarpit-ms 100
expect_eq "$(get tarpit .tarpit)" true "tarpit: detected"

probe starttls starttls.test --no-concurrency --no-rate --bad-rcpts 0
expect_eq "$(get starttls .capabilities.starttls)" true "starttls: offered"
expect_eq "$(get plain .capabilities.starttls)" false "plain: no STARTTLS"

probe blocked blocked-banner.test --bad-rcpts 5
expect_eq "$(get blocked .connections)" 1 "blocked: one connection, then no more"
expect_match "$(get blocked .notes)" 'refused our first connection: 553' "blocked: says why"
expect_eq "$(get blocked .connection_rate_limited)" false "blocked: not a rate limit"

# Text output: the same facts for people.
"$MXPROBE" probe-server connlimit.test --dns "127.0.0.1:$DNS_PORT" --samples 1 --no-rate \
  --bad-rcpts 0 --max-connections 4 >"$WORK/text.txt" 2>/dev/null || fail "text report"
expect_match "$(cat "$WORK/text.txt")" '^concurrent connections +2 accepted, the next refused' \
  "text: concurrency line"
rm -f "$WORK/report.json"
kill -USR1 "$FARM_PID"
for _ in $(seq 100); do [[ -s $WORK/report.json ]] && break; sleep 0.05; done
expect_eq "$(jq '.total.data_commands' "$WORK/report.json")" 0 "never DATA"
echo "probe_server: $CHECKS checks passed"
