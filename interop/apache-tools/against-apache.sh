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

# A broker port whose VIP channel (port - 2) and HA port (port + 1) are free too.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_free() { python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1',$1))" 2>/dev/null; }
ns_port=$(free_port)
broker_port=""
for _ in $(seq 1 50); do
    p=$(free_port)
    if [ "$p" -gt 1026 ] && [ "$p" != "$ns_port" ] && port_free $((p - 2)) && port_free $((p + 1)); then
        broker_port=$p
        break
    fi
done
[ -n "$broker_port" ] || { echo "no free port triple for Apache's broker" >&2; exit 1; }

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
# "boot success" comes before the broker's first registration lands; under load the tests
# could ask the name server for DefaultCluster's route too early. Wait (bounded) until the
# name server's cluster info (GET_BROKER_CLUSTER_INFO, 106) names broker-a.
registered() {
    python3 - "$ns_port" <<'PY'
import json, socket, struct, sys
header = json.dumps({"code": 106, "flag": 0, "language": "JAVA", "opaque": 1,
                     "serializeTypeCurrentRPC": "JSON", "version": 453}).encode()
frame = struct.pack(">ii", 4 + len(header), len(header)) + header
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3) as s:
    s.sendall(frame)
    data = b""
    while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
sys.exit(0 if b"broker-a" in data else 1)
PY
}
for _ in $(seq 1 60); do
    registered && break
    sleep 1
done
registered || { echo "Apache's broker did not register with its name server" >&2; exit 1; }
echo "Apache RocketMQ 5.5.0: name server 127.0.0.1:$ns_port, broker 127.0.0.1:$broker_port"

mvn -B -ntp test -Dtarget.namesrv="127.0.0.1:$ns_port" -Dtarget.broker="127.0.0.1:$broker_port" "$@"
