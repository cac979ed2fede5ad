#!/usr/bin/env bash
# Every DNS case of a generated scenario, asked of the farm's dnsmasq with dig (a real resolver
# client): MX with preferences, null MX, A-only, no mail records, NXDOMAIN, SERVFAIL, timeout.
# Range 127.100-109.0.0/16 (see pick_net in lib.sh).
source "$(dirname "$0")/../lib.sh"

SC=$WORK/scenario.json
REPORT=$WORK/report.json
launch 100 109 --domains 3 --hosts 2 --ttl 123 \
  --special aonly,nullmx,nomx,nxdomain,servfail,dnstimeout,failover
expect_eq "$READY_LINE" "ready dns=127.0.0.1:$DNS_PORT listeners=4" "ready line (2 shared + failover mx2 + aonly)"

q() { dig @127.0.0.1 -p "$DNS_PORT" +time=1 +tries=1 +norecurse "$@" 2>&1 || true; }

# MX records with their preferences, and the hosts' addresses from the scenario.
out=$(q MX d1.test)
expect_match "$out" "status: NOERROR" "d1 MX status"
expect_match "$out" "^d1.test\.[[:space:]]+123[[:space:]]+IN[[:space:]]+MX[[:space:]]+10 mx1.farm.test\.$" "d1 primary MX, TTL"
expect_match "$out" "^d1.test\.[[:space:]]+123[[:space:]]+IN[[:space:]]+MX[[:space:]]+20 mx2.farm.test\.$" "d1 secondary MX"
out=$(q +short A mx1.farm.test)
expect_eq "$out" "$(ip_of "$SC" d1.test 0)" "MX host address"
out=$(q MX d2.test)
expect_match "$out" "MX[[:space:]]+10 mx2.farm.test\.$" "d2 primary is the other host"

# failover.test: both MX names resolve, even the one whose host refuses connections.
out=$(q +short MX failover.test | sort)
expect_eq "$out" $'10 mx1.failover.test.\n20 mx2.failover.test.' "failover MX set"
expect_eq "$(q +short A mx1.failover.test)" "$(ip_of "$SC" failover.test 0)" "refusing host resolves"

# Null MX (RFC 7505): one MX, preference 0, target ".".
out=$(q MX nullmx.test)
expect_match "$out" "status: NOERROR" "null MX status"
expect_match "$out" "^nullmx.test\.[[:space:]]+123[[:space:]]+IN[[:space:]]+MX[[:space:]]+0 \.$" "null MX record"

# A-only: no MX (NOERROR, empty answer), an A record that is the implicit MX.
out=$(q MX aonly.test)
expect_match "$out" "status: NOERROR" "A-only MX status"
expect_match "$out" "ANSWER: 0," "A-only has no MX"
expect_eq "$(q +short A aonly.test)" "$(ip_of "$SC" aonly.test)" "A-only address"

# No mail records at all: the name exists (TXT) but has neither MX nor A.
out=$(q MX nomx.test)
expect_match "$out" "status: NOERROR" "nomx MX status"
expect_match "$out" "ANSWER: 0," "nomx has no MX"
expect_match "$(q A nomx.test)" "ANSWER: 0," "nomx has no A"
expect_match "$(q TXT nomx.test)" "v=spf1 -all" "nomx exists (TXT)"

# NXDOMAIN: the listed nxdomain.test and any other name under the scenario's TLD.
expect_match "$(q MX nxdomain.test)" "status: NXDOMAIN" "nxdomain"
expect_match "$(q A "never-listed-$RANDOM.test")" "status: NXDOMAIN" "unlisted name"

# SERVFAIL, answered by mxfarm's own responder behind dnsmasq.
expect_match "$(q MX servfail.test)" "status: SERVFAIL" "servfail MX"
expect_match "$(q A servfail.test)" "status: SERVFAIL" "servfail A"

# Timeout: nobody answers.
t0=$(now_ms)
out=$(q MX dnstimeout.test)
expect_match "$out" "timed out" "dnstimeout gets no answer"
expect_no_match "$out" "status:" "dnstimeout: no status at all"
(($(now_ms) - t0 >= 900)) || fail "dnstimeout answered too fast"
ok

# The farm's DNS answers the names only for the scenario: nothing is forwarded elsewhere.
expect_match "$(q A example.com)" "status: REFUSED|status: SERVFAIL|timed out" "no upstream"

stop_farm
echo "PASS dns_cases: $CHECKS checks"
