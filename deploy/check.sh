#!/usr/bin/env bash
# Starts each compose layout under deploy/ from the image, runs the tutorial's Go programs
# (interop/go/seed, the official Go client) against it, checks what the layout promises,
# and takes it down with its volumes.
#   deploy/check.sh [layout...]        layouts: tutorial master-slave controller (default: all)
# The image is FERROMQ_IMAGE (default ferromq:latest, from scripts/image.sh). The layouts
# use the host's network and the default ports (9876, 10911, 8080, ...): nothing else may
# hold them while this runs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export FERROMQ_IMAGE=${FERROMQ_IMAGE:-ferromq:latest}
runtime=${CONTAINER_RUNTIME:-podman}
# COMPOSE names the compose program. podman-compose must be 1.1 or later: Debian 12's
# 1.0.3 adds a bridge network to network_mode: host and runs exec-form health checks
# through /bin/sh, which a FROM scratch image does not have.
if [ -n "${COMPOSE:-}" ]; then read -r -a compose <<< "$COMPOSE"
elif [ "$runtime" = podman ]; then compose=(podman-compose); else compose=(docker compose); fi
layouts=("$@")
[ ${#layouts[@]} -gt 0 ] || layouts=(tutorial master-slave controller)

work=$(mktemp -d)
project=""
cleanup() {
    local rc=$?
    if [ -n "$project" ]; then
        if [ $rc -ne 0 ]; then
            echo "---- logs of $project ----"
            for c in $(containers); do echo "== $c"; "$runtime" logs "$c" 2>&1 | tail -40; done
        fi
        down
    fi
    rm -rf "$work"
    exit $rc
}
trap cleanup EXIT

step() { printf '\n--> [%s] %s\n' "$(date +%T)" "$*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

step "building the tutorial's Go programs (official rocketmq-client-go)"
(cd interop/go && go build -o "$work/" ./seed/producer ./seed/consumer ./crossclient)

up() {
    project="fmq-$1"
    "${compose[@]}" -p "$project" -f "deploy/$1/compose.yaml" up -d > "$work/compose-up.log" 2>&1 \
        || { cat "$work/compose-up.log"; fail "compose up of $1"; }
}
down() {
    "${compose[@]}" -p "$project" -f "deploy/${project#fmq-}/compose.yaml" down -v > "$work/compose-down.log" 2>&1 \
        || cat "$work/compose-down.log"
    project=""
}
# The layout's containers, by compose's project label.
containers() {
    "$runtime" ps -a --filter "label=com.docker.compose.project=$project" --format '{{.Names}}'
}
container() {
    grep -m1 -E "[_-]$1([_-][0-9]+)?$" <<< "$(containers)"
}
# Runs the image's own binary on the host's network: `ferromq admin` without a Rust build.
ferromq() {
    "$runtime" run --rm --network=host "$FERROMQ_IMAGE" "$@"
}
# Waits (at most 60 s) until every container's health check passes.
await_healthy() {
    local c
    for c in $(containers); do
        local ok=false
        for _ in $(seq 1 120); do
            if "$runtime" healthcheck run "$c" > /dev/null 2>&1; then ok=true; break; fi
            sleep 0.5
        done
        $ok || fail "$c never became healthy"
    done
}
# The brokers the name server at $1 lists, as "brokerName brokerId address" lines.
brokers() {
    ferromq admin clusterList -n "$1" --json 2>/dev/null | python3 -c '
import json, sys
for b in json.load(sys.stdin):
    print(b["brokerName"], b["brokerId"], b["addr"])'
}
await_brokers() {
    local namesrv=$1 want=$2 seen=""
    for _ in $(seq 1 60); do
        seen=$(brokers "$namesrv" || true)
        if [ "$(printf '%s\n' "$seen" | grep -c .)" -ge "$want" ]; then return 0; fi
        sleep 1
    done
    fail "$namesrv lists $(printf '%s' "$seen" | grep -c .) brokers, not $want: $seen"
}
# The tutorial's producer and consumer, unchanged (both use 127.0.0.1:9876).
tutorial_programs() {
    local out
    out=$("$work/producer" 2>&1) || fail "the tutorial's producer: $out"
    grep -q "发送成功" <<< "$out" || fail "the tutorial's producer did not send: $out"
    # The consumer sleeps an hour after subscribing: read until the message arrives.
    "$work/consumer" > "$work/consumer.out" 2>&1 &
    local pid=$!
    local got=false
    for _ in $(seq 1 60); do
        if grep -q "获取到值" "$work/consumer.out"; then got=true; break; fi
        sleep 0.5
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    $got || fail "the tutorial's consumer received nothing in 30 s: $(cat "$work/consumer.out")"
    echo "the tutorial's producer sent and its consumer received"
}
send() { # namesrv topic count
    "$work/crossclient" -namesrv "$1" -mode send -topic "$2" -count "$3" > /dev/null \
        || fail "sending $3 messages to $2"
}
# Receives count messages of topic with a new group; fails unless every body arrived.
receive_all() { # namesrv topic group count
    "$work/crossclient" -namesrv "$1" -mode receive -topic "$2" -group "$3" -count "$4" -timeout 60s \
        > "$work/received" || fail "receiving $4 messages of $2"
    local distinct
    distinct=$(python3 -c 'import json,sys; print(len({json.loads(l)["body"] for l in open(sys.argv[1])}))' "$work/received")
    [ "$distinct" = "$4" ] || fail "$distinct distinct messages of $4 came back"
}

check_tutorial() {
    step "tutorial: name server, broker and dashboard"
    up tutorial
    await_healthy
    await_brokers 127.0.0.1:9876 1
    tutorial_programs
    curl -fsS -o /dev/null http://127.0.0.1:8080/ || fail "the dashboard does not answer on :8080"
    # Read whole before grep: `grep -q` stops early, and under pipefail the writer's
    # SIGPIPE would fail the check.
    local logs
    logs=$("$runtime" logs "$(container broker)" 2>&1)
    grep -q FERROMQ_BROKER_IP1 <<< "$logs" || fail "no warning that brokerIP1 is left at 127.0.0.1"

    step "tutorial: SIGTERM stops the broker cleanly and loses nothing acknowledged"
    send 127.0.0.1:9876 DurabilityCheck 300
    local broker start elapsed code
    broker=$(container broker)
    start=$(date +%s%N)
    "$runtime" stop -t 10 "$broker" > /dev/null 2>&1
    elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
    code=$("$runtime" inspect "$broker" --format '{{.State.ExitCode}}')
    # 137 would mean the runtime gave up waiting and sent SIGKILL.
    [ "$code" = 0 ] || fail "the broker exited with $code after SIGTERM ($elapsed ms)"
    echo "the broker stopped on SIGTERM in $elapsed ms with exit code 0"
    [ -z "$(brokers 127.0.0.1:9876)" ] || fail "the stopped broker is still registered"
    "$runtime" start "$broker" > /dev/null
    await_healthy
    await_brokers 127.0.0.1:9876 1
    receive_all 127.0.0.1:9876 DurabilityCheck after-restart 300
    echo "all 300 acknowledged messages were there after the restart"
    down
}

check_master_slave() {
    step "master-slave: two name servers, a master and its slave"
    up master-slave
    await_healthy
    await_brokers 127.0.0.1:9877 2
    grep -q "^broker-a 1 " <<< "$(brokers 127.0.0.1:9877)" || fail "the slave is not registered"
    # A slave copies its master's topic configs every 10 s (as Apache's does): create the
    # topic now, so the slave knows it by the time the master goes.
    ferromq admin updateTopic -n 127.0.0.1:9876 -c DefaultCluster -t SlaveReadCheck > /dev/null
    local created=$SECONDS
    tutorial_programs

    step "master-slave: the slave holds every message, and serves reads while the master is down"
    # SYNC_MASTER: each send is acknowledged once the slave holds it too.
    send 127.0.0.1:9877 SlaveReadCheck 100
    sleep $(( 11 - (SECONDS - created) > 0 ? 11 - (SECONDS - created) : 0 ))
    "$runtime" stop -t 10 "$(container broker-a-master)" > /dev/null 2>&1
    ! grep -q "^broker-a 0 " <<< "$(brokers 127.0.0.1:9877)" || fail "the stopped master is still registered"
    local read
    local listed
    listed=$(ferromq admin consumeMessage -n 127.0.0.1:9877 -t SlaveReadCheck --json -c 500 --seconds 10) || true
    read=$(grep -o '"from-go-[0-9]*"' <<< "$listed" | sort -u | grep -c .) || true
    [ "$read" = 100 ] || fail "$read of 100 messages could be read from the slave"
    echo "all 100 messages were read from the slave with the master down"
    down
}

check_controller() {
    step "controller mode: three name servers with controllers, a broker group of three"
    up controller
    await_healthy
    await_brokers 127.0.0.1:9876 3
    local master
    for _ in $(seq 1 60); do
        master=$(brokers 127.0.0.1:9876 | awk '$2 == 0 {print $3}')
        [ -n "$master" ] && break
        sleep 1
    done
    [ -n "$master" ] || fail "no master was elected"
    echo "the controllers elected $master"
    tutorial_programs

    step "controller mode: losing the master's container loses nothing"
    send 127.0.0.1:9876 FailoverCheck 200
    local port=${master##*:} victim=""
    case "$port" in
        10911) victim=broker-n0 ;; 10921) victim=broker-n1 ;; 10931) victim=broker-n2 ;;
        *) fail "unexpected master address $master" ;;
    esac
    "$runtime" kill "$(container "$victim")" > /dev/null
    local new=""
    for _ in $(seq 1 60); do
        new=$(brokers 127.0.0.1:9876 | awk '$2 == 0 {print $3}')
        [ -n "$new" ] && [ "$new" != "$master" ] && break
        new=""
        sleep 1
    done
    [ -n "$new" ] || fail "no new master after $master was killed"
    echo "after $victim was killed the controllers elected $new"
    receive_all 127.0.0.1:9876 FailoverCheck after-failover 200
    send 127.0.0.1:9876 FailoverCheck 10
    echo "all 200 acknowledged messages survived, and sends go on"
    down
}

for layout in "${layouts[@]}"; do
    case "$layout" in
        tutorial) check_tutorial ;;
        master-slave) check_master_slave ;;
        controller) check_controller ;;
        *) fail "unknown layout $layout" ;;
    esac
done
step "every layout passed"
