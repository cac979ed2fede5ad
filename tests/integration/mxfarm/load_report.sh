#!/usr/bin/env bash
# The report's numbers under load from Postfix's smtp-source: exact connection, command, reply,
# RCPT and DATA counts, and concurrency bounded by the client's own parallelism.
# Range 127.130-139.0.0/16 (see pick_net in lib.sh).
source "$(dirname "$0")/../lib.sh"

SC=$WORK/scenario.json
REPORT=$WORK/report.json
launch 130 139 --domains 2 --hosts 2 --mailboxes 1 --full-share 0 --disabled-share 0 \
  --catch-all-share 0 --special none
ip1=$(ip_of "$SC" d1.test)
ip2=$(ip_of "$SC" d2.test)

# Verification-shaped sessions: the RCPT is refused, so smtp-source -A sends RSET, never DATA.
smtp-source -A -s 8 -m 400 -r 1 -f x@client.test -t nobody@d1.test "$ip1:25" 2>/dev/null
# Deliveries: the RCPT is accepted, so smtp-source sends DATA (the farm must count it).
smtp-source -s 3 -m 30 -r 1 -f x@client.test -t user1@d2.test "$ip2:25" 2>/dev/null
stop_farm

r() { report_get "$REPORT" "$1"; }
m1="r['mx']['mx1.farm.test']"
expect_eq "$(r "${m1}['connections']")" 400 "connections at mx1"
expect_eq "$(r "${m1}['commands']")" "{'HELO': 400, 'MAIL': 400, 'QUIT': 400, 'RCPT': 400, 'RSET': 400}" "commands at mx1"
expect_eq "$(r "${m1}['replies']")" "{'220': 400, '221': 400, '250': 1200, '550': 400}" "replies at mx1"
expect_eq "$(r "${m1}['data_commands']")" 0 "no DATA at mx1"
expect_eq "$(r "1 <= ${m1}['peak_concurrent'] <= 8")" True "concurrency at mx1 within smtp-source -s 8"
expect_eq "$(r "${m1}['peak_connections_per_second'] >= ${m1}['peak_concurrent']")" True "burst >= concurrency"
expect_eq "$(r "${m1}['current_connections']")" 0 "all closed"
expect_eq "$(r "r['rcpt_by_address']['nobody@d1.test']")" 400 "RCPTs for one address"
m2="r['mx']['mx2.farm.test']"
expect_eq "$(r "${m2}['data_commands']")" 30 "DATA counted at mx2"
expect_eq "$(r "${m2}['replies']['354']")" 30 "354 for each DATA"
expect_eq "$(r "1 <= ${m2}['peak_concurrent'] <= 3")" True "concurrency at mx2 within -s 3"
expect_eq "$(r "r['total']['data_commands']")" 30 "total DATA"
expect_eq "$(r "r['total']['connections']")" 430 "total connections"
expect_eq "$(r "r['clients']['127.0.0.1']['peak_concurrent'] <= 8")" True "client-level concurrency"
expect_eq "$(r "r['rcpt_by_domain']")" "{'d1.test': 400, 'd2.test': 30}" "RCPTs per domain"
echo "PASS load_report: $CHECKS checks"
