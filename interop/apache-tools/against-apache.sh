#!/usr/bin/env bash
# Runs this suite against Apache RocketMQ 5.5.0 itself (name server and broker from Maven
# Central, started here on free 127.0.0.1 ports with the same e2e settings), so that every
# assertion is shown to describe Apache, not FerroMQ. Both processes are stopped by their PIDs.
# Arguments go to that mvn run, e.g. -Dtest=RemotingPopConsumerTest.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d -t apache-rocketmq-XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

mvn -B -q -ntp dependency:build-classpath -Dmdep.outputFile="$work/cp.txt" -Dmdep.includeScope=test
cp=$(cat "$work/cp.txt")

. ../apache-common.sh
ns_port=$(free_port)
taken=" $ns_port "
pick_broker_port

printf 'listenPort=%s\n' "$ns_port" > "$work/namesrv.conf"
cat > "$work/broker.conf" <<CONF
brokerClusterName=DefaultCluster
brokerName=broker-a
brokerId=0
namesrvAddr=127.0.0.1:$ns_port
listenPort=$broker_port
brokerIP1=127.0.0.1
storePathRootDir=$work/store
autoCreateTopicEnable=false
enablePropertyFilter=true
flushDiskType=SYNC_FLUSH
maxMessageSize=5242880
recallMessageEnable=true
CONF

export ROCKETMQ_HOME="$work"
java -Xmx512m -Duser.home="$work" -cp "$cp" org.apache.rocketmq.namesrv.NamesrvStartup -c "$work/namesrv.conf" > "$work/namesrv.log" 2>&1 &
pids+=($!)
java -Xmx1g -Duser.home="$work" -cp "$cp" org.apache.rocketmq.broker.BrokerStartup -c "$work/broker.conf" > "$work/broker.log" 2>&1 &
pids+=($!)

# Bounded wait for the broker's "boot success" line (it takes about 10 s).
for _ in $(seq 1 120); do
    grep -q "boot success" "$work/broker.log" && break
    sleep 1
done
grep -q "boot success" "$work/broker.log" || { echo "Apache's broker did not start:" >&2; tail -50 "$work/broker.log" >&2; exit 1; }
# Bounded wait until the name server knows the broker (see apache-common.sh).
for _ in $(seq 1 60); do
    registered "$ns_port" && break
    sleep 1
done
registered "$ns_port" || { echo "Apache's broker did not register with its name server" >&2; exit 1; }
echo "Apache RocketMQ 5.5.0: name server 127.0.0.1:$ns_port, broker 127.0.0.1:$broker_port"

mvn -B -ntp test -Dtarget.namesrv="127.0.0.1:$ns_port" -Dtarget.broker="127.0.0.1:$broker_port" "$@"
