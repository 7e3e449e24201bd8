#!/usr/bin/env bash
# What observability costs on the send path (issue 20): the same load — producers sending
# 1 KiB messages as fast as they can, one consumer group draining the topic at the same
# time (so pulls and offset commits run, which is what the life records record) — against
# `ferromq standalone` with the request-path metrics and the life records on (the
# defaults), each off alone, and both off, several rounds; each round starts one
# configuration later, so none always runs first. Prints each run and the medians, and
# writes bench/OBSERVABILITY.md (not with --smoke).
#   bench/compare/run --observability [--rounds 4] [--seconds 10] [--producers 8] [--smoke]
# Every address is 127.0.0.1; FERROMQ_BIN is the binary under test (run sets it).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=4 seconds=10 producers=8 smoke=false
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --producers) producers=$2; shift 2 ;;
        --smoke) smoke=true; rounds=1; seconds=2; producers=2; shift ;;
        --observability) shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
bin=${FERROMQ_BIN:?FERROMQ_BIN names the binary under test}
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

configs=(on metrics-off life-off both-off)
conf_of() {
    case "$1" in
        on) : ;;
        metrics-off) printf 'enableRequestMetrics=false\nenableRemotingMetrics=false\n' ;;
        life-off) printf 'enableMessageLife=false\n' ;;
        both-off) printf 'enableRequestMetrics=false\nenableRemotingMetrics=false\nenableMessageLife=false\n' ;;
    esac
}

run() { # config → "sends_per_sec p99_us consumed_per_sec"
    local conf="$work/broker.conf" ns bp out
    rm -rf "$work/data"
    conf_of "$1" > "$conf"
    ns=$(free_port); bp=$(free_port)
    "$bin" standalone -c "$conf" --data-dir "$work/data" --namesrv-listen "127.0.0.1:$ns" \
        --broker-listen "127.0.0.1:$bp" --no-dashboard --no-grpc --log-level warn > "$work/out" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        out=$(cat "$work/out")
        case "$out" in *"FerroMQ is ready"*) break ;; esac
        sleep 0.1
    done
    "$bin" admin updateTopic -n "127.0.0.1:$ns" -c DefaultCluster -t ObservabilityCost -r 8 -w 8 \
        --log-level error > /dev/null
    "$bin" bench consume -n "127.0.0.1:$ns" --topic ObservabilityCost --group cost-consumer \
        --messages 100000000 --seconds "$((seconds + 5))" --log-level warn > "$work/consume" 2>/dev/null &
    local consumer=$!
    sleep 1
    local produced
    produced=$("$bin" bench produce -n "127.0.0.1:$ns" --topic ObservabilityCost --producers "$producers" \
        --size 1024 --seconds "$seconds" --log-level warn 2>/dev/null | sed -n 's/^RESULT //p')
    wait "$consumer" || true
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
    python3 - "$produced" "$work/consume" <<'PY'
import json, sys
p = json.loads(sys.argv[1])
c = next((json.loads(l[7:]) for l in open(sys.argv[2]) if l.startswith("RESULT ")), {"msgs_per_sec": 0})
print(round(p["msgs_per_sec"]), p["p99_us"], round(c["msgs_per_sec"]))
PY
}

declare -A sends p99s consumed
for i in $(seq 1 "$rounds"); do
    line="round $i:"
    for k in 0 1 2 3; do
        c=${configs[$(( (i - 1 + k) % 4 ))]}
        r=$(run "$c")
        read -r s p q <<< "$r"
        sends[$c]+="$s "; p99s[$c]+="$p "; consumed[$c]+="$q "
        line+="  $c $s/s p99 ${p}us (consumed $q/s)"
    done
    echo "$line"
done
median() { printf '%s\n' $1 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
range() { printf '%s\n' $1 | sort -n | awk 'NR==1 {lo=$1} {hi=$1} END {print lo "–" hi}'; }
table="| configuration | sends/s (median) | sends/s (all rounds) | send p99 µs (median) | consumed/s (median) | median vs all on |
|---|---:|---:|---:|---:|---:|"
base=$(median "${sends[on]}")
for c in "${configs[@]}"; do
    m=$(median "${sends[$c]}")
    table+="
| $c | $m | $(range "${sends[$c]}") | $(median "${p99s[$c]}") | $(median "${consumed[$c]}") | $(python3 -c "print(f'{($m-$base)/$base*100:+.1f} %')") |"
done
echo
echo "$table"
if ! $smoke; then
    {
        echo "# What observability costs on the send path"
        echo
        echo "\`bench/compare/run --observability --rounds $rounds --seconds $seconds --producers $producers\` on $(date -u +%Y-%m-%d):"
        echo "$producers producers send 1 KiB messages synchronously as fast as they can while one consumer group"
        echo "drains the topic (8 queues), against \`ferromq standalone\` (release, ASYNC_FLUSH) with the"
        echo "request-path metrics (\`enableRequestMetrics\`, \`enableRemotingMetrics\`) and the life records"
        echo "(\`enableMessageLife\`) on and off, $rounds rounds of ${seconds} s each (each round starts one"
        echo "configuration later, so none always runs first); medians."
        echo
        echo "$table"
        echo
        echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)."
    } > bench/OBSERVABILITY.md
    echo "wrote bench/OBSERVABILITY.md"
fi
