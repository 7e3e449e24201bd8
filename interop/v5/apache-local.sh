#!/usr/bin/env bash
# Apache RocketMQ 5.5.0 for the v5 (gRPC) interop suites: a name server and a proxy in "local"
# mode (the broker runs inside the proxy's JVM), on free 127.0.0.1 ports, from Maven Central jars
# (class path from apache-local/pom.xml).
#
#   apache-local.sh start STATE_DIR   start both, wait until ready (bounded), write STATE_DIR/env
#   apache-local.sh stop  STATE_DIR   stop the PIDs listed in STATE_DIR/env (TERM, then KILL)
#
# STATE_DIR/env is shell- and dotenv-readable, one KEY=VALUE a line:
#   NAMESRV=127.0.0.1:p   name server (mqadmin -n)
#   GRPC=127.0.0.1:p      the proxy's gRPC port (v5 clients; plaintext and TLS on the same port)
#   BROKER=127.0.0.1:p    the broker's remoting port (mqadmin -b, updateBrokerConfig)
#   REMOTING=127.0.0.1:p  the proxy's remoting port
#   PIDS="namesrv proxy"  the two JVMs
#   LOGS=dir              where the name server, proxy and broker logs are
#   TLS_CERT=path         the certificate the gRPC port presents (PEM, self-signed, CA:TRUE,
#                         SAN IP:127.0.0.1 and localhost); empty without openssl (then the proxy's
#                         own test-mode certificate: CN=localhost only)
# STATE_DIR/mqadmin is a wrapper: `STATE_DIR/mqadmin updateTopic -n "$NAMESRV" -c DefaultCluster -t T ...`
# runs org.apache.rocketmq.tools.command.MQAdminStartup with the same class path;
# STATE_DIR/mqadmin-batch runs the commands on its stdin (one a line, no quoting) in one JVM.
#
# Extra broker.conf lines (appended, so they win): APACHE_BROKER_EXTRA="key=value\nkey=value".
# Extra rmq-proxy.json fields: APACHE_PROXY_EXTRA='{"key": value}'. Boot wait: APACHE_BOOT_TIMEOUT (s, 120).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:-}
state=${2:-}
[ -n "$cmd" ] && [ -n "$state" ] || { echo "usage: $0 start|stop STATE_DIR" >&2; exit 2; }

stop() {
    local env_file="$state/env" pids pid
    [ -f "$env_file" ] || { echo "no $env_file: nothing to stop" >&2; return 0; }
    pids=$(sed -n 's/^PIDS="\{0,1\}\([0-9 ]*\)"\{0,1\}$/\1/p' "$env_file")
    for pid in $pids; do kill "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 60); do
        local alive=""
        for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive="$alive $pid"; done
        [ -z "$alive" ] && return 0
        sleep 0.5
    done
    for pid in $pids; do kill -9 "$pid" 2>/dev/null || true; done
}

if [ "$cmd" = stop ]; then
    stop
    exit 0
fi
[ "$cmd" = start ] || { echo "usage: $0 start|stop STATE_DIR" >&2; exit 2; }

mkdir -p "$state"
state=$(cd "$state" && pwd)
logs="$state/logs"
mkdir -p "$logs"

# Class path, cached in apache-local/target (rebuilt when the pom changes or a jar went missing).
cache="$here/apache-local/target/classpath.txt"
cp=""
if [ -f "$cache" ] && [ "$cache" -nt "$here/apache-local/pom.xml" ]; then
    cp=$(cat "$cache")
    IFS=: read -r -a jars <<< "$cp"
    for j in "${jars[@]}"; do [ -f "$j" ] || { cp=""; break; }; done
fi
if [ -z "$cp" ]; then
    mkdir -p "$here/apache-local/target"
    tmp=$(mktemp "$here/apache-local/target/classpath.XXXXXX")
    (cd "$here/apache-local" && mvn -B -q -ntp dependency:build-classpath -Dmdep.outputFile="$tmp") >&2
    mv "$tmp" "$cache"
    cp=$(cat "$cache")
fi

. "$here/../apache-common.sh"
# Sets the variable named $1 to a free port not handed out yet. (Not in a $(...) subshell,
# where `taken` would not remember it.)
pick() {
    local p
    for _ in $(seq 1 50); do
        p=$(free_port)
        case "$taken" in *" $p "*) continue ;; esac
        taken="$taken$p "
        printf -v "$1" '%s' "$p"
        return 0
    done
    return 1
}
pick ns_port
pick grpc_port
pick remoting_port
pick_broker_port

printf 'listenPort=%s\n' "$ns_port" > "$state/namesrv.conf"
cat > "$state/broker.conf" <<CONF
brokerClusterName=DefaultCluster
brokerName=broker-a
brokerId=0
namesrvAddr=127.0.0.1:$ns_port
listenPort=$broker_port
brokerIP1=127.0.0.1
storePathRootDir=$state/store
storePathCommitLog=$state/store/commitlog
autoCreateTopicEnable=false
autoCreateSubscriptionGroup=true
enablePropertyFilter=true
flushDiskType=SYNC_FLUSH
maxMessageSize=5242880
# RecallMessage (Apache 5.3.1+) is off by default there, on by default in FerroMQ.
recallMessageEnable=true
# transaction check-back soon after the half message: every 2 s (Apache's default: 30 s) for halves
# older than 6 s (the default). Not shorter: Apache batches a commit's or rollback's op message for
# up to transactionOpBatchInterval (3 s), and a check in that window asks the producer again about
# a transaction it already ended (a checker answering COMMIT then revives a rolled-back message).
transactionCheckInterval=2000
transactionTimeOut=6000
CONF
if [ -n "${APACHE_BROKER_EXTRA:-}" ]; then printf '%b\n' "$APACHE_BROKER_EXTRA" >> "$state/broker.conf"; fi

# TLS: a self-signed certificate (CA:TRUE, subjectAltName IP:127.0.0.1 and localhost) instead of
# the proxy's default test-mode one (netty SelfSignedCertificate: CN=localhost, no SAN, no CA flag),
# which clients that verify (the Python client: grpc.ssl_channel_credentials()) can never trust.
tls_cert=""
if command -v openssl > /dev/null; then
    mkdir -p "$state/tls"
    if openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=localhost" \
        -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -addext "basicConstraints=critical,CA:TRUE" \
        -keyout "$state/tls/server.key" -out "$state/tls/server.crt" > "$logs/openssl.out" 2>&1; then
        tls_cert="$state/tls/server.crt"
    fi
fi

python3 - "$state/rmq-proxy.json" "$ns_port" "$grpc_port" "$remoting_port" "${APACHE_PROXY_EXTRA:-}" "$tls_cert" <<'PY'
import json, sys
path, ns, grpc, remoting, extra, cert = sys.argv[1:7]
conf = {
    "rocketMQClusterName": "DefaultCluster",
    "namesrvAddr": f"127.0.0.1:{ns}",
    "grpcServerPort": int(grpc),
    "remotingListenPort": int(remoting),
    "localServeAddr": "127.0.0.1",
    "metricsExporterType": "DISABLE",
}
if cert:
    conf.update(tlsTestModeEnable=False, tlsCertPath=cert, tlsKeyPath=cert[: -len("server.crt")] + "server.key")
if extra:
    conf.update(json.loads(extra))
json.dump(conf, open(path, "w"), indent=2)
PY

printf '%s' "$cp" > "$state/classpath.txt"
cat > "$state/mqadmin" <<SH
#!/usr/bin/env bash
# mqadmin of Apache RocketMQ 5.5.0 (MQAdminStartup) with the apache-local class path.
export ROCKETMQ_HOME="$state"
exec java -Xmx256m -Duser.home="$state" -Drocketmq.client.logRoot="$logs/mqadmin" -cp "\$(cat "$state/classpath.txt")" org.apache.rocketmq.tools.command.MQAdminStartup "\$@"
SH
cat > "$state/mqadmin-batch" <<SH
#!/usr/bin/env bash
# Several mqadmin commands in one JVM: one command a line on stdin (no quoting), e.g.
#   printf 'updateTopic -n %s -c DefaultCluster -t T -a +message.type=FIFO\\n' "\$NAMESRV" | mqadmin-batch
export ROCKETMQ_HOME="$state"
exec java -Xmx256m -Duser.home="$state" -Drocketmq.client.logRoot="$logs/mqadmin" -cp "\$(cat "$state/classpath.txt")" "$here/apache-local/MqAdminBatch.java"
SH
chmod +x "$state/mqadmin" "$state/mqadmin-batch"

export ROCKETMQ_HOME="$state"
mkdir -p "$state/conf"
pids=()
fail() {
    echo "Apache RocketMQ 5.5.0 did not start: $1" >&2
    for f in "$logs/namesrv.out" "$logs/proxy.out"; do
        [ -f "$f" ] && { echo "--- $f" >&2; tail -40 "$f" >&2; }
    done
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    exit 1
}

nohup java -Xmx256m -Duser.home="$state" -cp "$cp" org.apache.rocketmq.namesrv.NamesrvStartup \
    -c "$state/namesrv.conf" > "$logs/namesrv.out" 2>&1 < /dev/null &
pids+=($!)
nohup java -Xmx1g -Duser.home="$state" -cp "$cp" org.apache.rocketmq.proxy.ProxyStartup \
    -pm local -bc "$state/broker.conf" -pc "$state/rmq-proxy.json" > "$logs/proxy.out" 2>&1 < /dev/null &
pids+=($!)
{
    echo "PIDS=\"${pids[*]}\""
    echo "LOGS=$logs"
} > "$state/env"   # so that `stop` works even when the wait below fails

listening() { python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),timeout=1).close()" 2>/dev/null; }
deadline=$((SECONDS + ${APACHE_BOOT_TIMEOUT:-120}))
ready=""
while [ $SECONDS -lt $deadline ]; do
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || fail "process $pid exited"; done
    if listening "$ns_port" && listening "$grpc_port" && listening "$broker_port" \
        && registered "$ns_port"; then
        ready=1
        break
    fi
    sleep 1
done
[ -n "$ready" ] || fail "not ready within ${APACHE_BOOT_TIMEOUT:-120} s"

cat > "$state/env" <<ENV
NAMESRV=127.0.0.1:$ns_port
GRPC=127.0.0.1:$grpc_port
BROKER=127.0.0.1:$broker_port
REMOTING=127.0.0.1:$remoting_port
PIDS="${pids[*]}"
LOGS=$logs
TLS_CERT=$tls_cert
ENV
cat "$state/env"
