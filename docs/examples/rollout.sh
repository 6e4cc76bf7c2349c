#!/bin/sh
# edge tune: schedule #3 (5/25/100 every 1m; SPRT 0.1%/0.5%) of tune-canary, service app: recommended (decided)
# predicted from 222 replications per hypothesis, intervals at 95% (valid at every round):
#   bad canary: caught 99% (95–100%), rolled back after 1m20s (1m4s–2m18s), errors seen 2.3 (2.0–2.9)
#   good canary: false rollback 0% (0–1.9%), promoted after 3m0s (3m0s–3m54s)
#
# The queries read edge's metric families (edge serve's /metrics), so that this can be rehearsed against edge; for production, replace edge_requests_total{service="app",environment="canary"} and edge_environment_duration_seconds by your own.
#
# Where wrangler differs from the rollout edge simulated:
# - the SPRT reads the canary's counters since they started (a new canary's pods: the rollout's start); edge stops testing once the ratio falls below its lower bound, the tool keeps testing
# - the checks run once, after each step's wait
# - no_data = "hold": a check without data fails the script; edge analyses the step again
#
# Usage: NEW=<new version id> OLD=<old version id> sh this-script   (ids from `wrangler versions list`)
set -eu
: "${NEW:?the id of the version rolled out (wrangler versions list)}"
: "${OLD:?the id of the version serving now}"
: "${PROMETHEUS_URL:=http://prometheus:9090}"
: "${WRANGLER:=npx wrangler}"
: "${EDGE_SLEEP:=sleep}"

# check NAME QUERY OP LIMIT: the query's value must satisfy OP LIMIT; no value (no data) fails.
check() {
  value=$(curl -fsS --get --data-urlencode "query=$2" "$PROMETHEUS_URL/api/v1/query" | python3 -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if r else "none")' 2>/dev/null) || value=""
  if [ -z "$value" ]; then
    echo "edge: $1: cannot query $PROMETHEUS_URL" >&2; return 1
  fi
  if [ "$value" = none ] || [ "$value" = NaN ]; then
    echo "edge: $1: no data" >&2; return 1
  fi
  if python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) $3 float(sys.argv[2]) else 1)" "$value" "$4"; then
    echo "edge: $1 = $value ($3 $4): passes" >&2
  else
    echo "edge: $1 = $value, expected $3 $4: fails" >&2; return 1
  fi
}

rollback() {
  echo "edge: a gate failed at $1%: back to $OLD" >&2
  $WRANGLER versions deploy "$OLD@100%" -y --message "edge: rolled back at $1%"
  exit 1
}

# step 1 of 3: 5% for 1m0s
$WRANGLER versions deploy "$NEW@5%" "$OLD@95%" -y --message "edge: step 1 of 3, 5%"
$EDGE_SLEEP 60
check error-ratio '((sum(increase(edge_requests_total{service="app",environment="canary",status_class="5xx"}[1m])) or vector(0)) / sum(increase(edge_requests_total{service="app",environment="canary"}[1m]))) and on() (sum(increase(edge_requests_total{service="app",environment="canary"}[1m])) >= 100)' '<' 0.01 || rollback 5
check p99-latency '(histogram_quantile(0.99, sum by (le) (rate(edge_environment_duration_seconds_bucket{service="app",environment="canary"}[1m])))) and on() (sum(increase(edge_requests_total{service="app",environment="canary"}[1m])) >= 100)' '<' 0.05 || rollback 5
check sprt-errors '(sum(edge_requests_total{service="app",environment="canary",status_class="5xx"}) or vector(0)) * 1.6094379124341003 + (sum(edge_requests_total{service="app",environment="canary"}) - (sum(edge_requests_total{service="app",environment="canary",status_class="5xx"}) or vector(0))) * -0.004012041489960769' '<' 4.553876891600541 || rollback 5

# step 2 of 3: 25% for 1m0s
$WRANGLER versions deploy "$NEW@25%" "$OLD@75%" -y --message "edge: step 2 of 3, 25%"
$EDGE_SLEEP 60
check error-ratio '((sum(increase(edge_requests_total{service="app",environment="canary",status_class="5xx"}[1m])) or vector(0)) / sum(increase(edge_requests_total{service="app",environment="canary"}[1m]))) and on() (sum(increase(edge_requests_total{service="app",environment="canary"}[1m])) >= 100)' '<' 0.01 || rollback 25
check p99-latency '(histogram_quantile(0.99, sum by (le) (rate(edge_environment_duration_seconds_bucket{service="app",environment="canary"}[1m])))) and on() (sum(increase(edge_requests_total{service="app",environment="canary"}[1m])) >= 100)' '<' 0.05 || rollback 25
check sprt-errors '(sum(edge_requests_total{service="app",environment="canary",status_class="5xx"}) or vector(0)) * 1.6094379124341003 + (sum(edge_requests_total{service="app",environment="canary"}) - (sum(edge_requests_total{service="app",environment="canary",status_class="5xx"}) or vector(0))) * -0.004012041489960769' '<' 4.553876891600541 || rollback 25

# step 3 of 3: 100% for 1m0s
$WRANGLER versions deploy "$NEW@100%" -y --message "edge: step 3 of 3, 100%"
$EDGE_SLEEP 60
check error-ratio '((sum(increase(edge_requests_total{service="app",environment="canary",status_class="5xx"}[1m])) or vector(0)) / sum(increase(edge_requests_total{service="app",environment="canary"}[1m]))) and on() (sum(increase(edge_requests_total{service="app",environment="canary"}[1m])) >= 100)' '<' 0.01 || rollback 100
check p99-latency '(histogram_quantile(0.99, sum by (le) (rate(edge_environment_duration_seconds_bucket{service="app",environment="canary"}[1m])))) and on() (sum(increase(edge_requests_total{service="app",environment="canary"}[1m])) >= 100)' '<' 0.05 || rollback 100
check sprt-errors '(sum(edge_requests_total{service="app",environment="canary",status_class="5xx"}) or vector(0)) * 1.6094379124341003 + (sum(edge_requests_total{service="app",environment="canary"}) - (sum(edge_requests_total{service="app",environment="canary",status_class="5xx"}) or vector(0))) * -0.004012041489960769' '<' 4.553876891600541 || rollback 100

echo "edge: every step passed: $NEW serves all traffic" >&2
