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

. ../apache-common.sh
# The suite runs from a copy of this module, so that it may run while the same suite runs
# against FerroMQ here (CI runs both side by side): each has its own target directory.
mkdir -p "$work/suite"
cp -r pom.xml src "$work/suite/"
cd "$work/suite"
mvn -B -q -ntp dependency:build-classpath -Dmdep.outputFile="$work/cp.txt" -Dmdep.includeScope=test
cp=$(cat "$work/cp.txt")

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

# A second pair with ACL 2.0 on, for Acl2Test (a shared broker cannot check every request):
# the same e2e settings and the test's super user.
auth_ns_port=$(free_port)
taken="$taken$auth_ns_port "
main_broker_port=$broker_port
pick_broker_port
auth_broker_port=$broker_port
broker_port=$main_broker_port
mkdir -p "$work/auth"
printf 'listenPort=%s\n' "$auth_ns_port" > "$work/auth/namesrv.conf"
sed -e "s/^namesrvAddr=.*/namesrvAddr=127.0.0.1:$auth_ns_port/" -e "s/^listenPort=.*/listenPort=$auth_broker_port/" \
    -e "s#^storePathRootDir=.*#storePathRootDir=$work/auth/store#" "$work/broker.conf" > "$work/auth/broker.conf"
cat >> "$work/auth/broker.conf" <<'CONF'
authenticationEnabled=true
authenticationMetadataProvider=org.apache.rocketmq.auth.authentication.provider.LocalAuthenticationMetadataProvider
authorizationEnabled=true
authorizationMetadataProvider=org.apache.rocketmq.auth.authorization.provider.LocalAuthorizationMetadataProvider
initAuthenticationUser={"username":"rocketmq","password":"12345678"}
CONF

export ROCKETMQ_HOME="$work"
java -Xmx512m -Duser.home="$work" -cp "$cp" org.apache.rocketmq.namesrv.NamesrvStartup -c "$work/namesrv.conf" > "$work/namesrv.log" 2>&1 &
pids+=($!)
java -Xmx1g -Duser.home="$work" -cp "$cp" org.apache.rocketmq.broker.BrokerStartup -c "$work/broker.conf" > "$work/broker.log" 2>&1 &
pids+=($!)
java -Xmx256m -Duser.home="$work/auth" -cp "$cp" org.apache.rocketmq.namesrv.NamesrvStartup -c "$work/auth/namesrv.conf" > "$work/auth/namesrv.log" 2>&1 &
pids+=($!)
java -Xmx512m -Duser.home="$work/auth" -cp "$cp" org.apache.rocketmq.broker.BrokerStartup -c "$work/auth/broker.conf" > "$work/auth/broker.log" 2>&1 &
pids+=($!)

# Bounded waits for each broker's "boot success" line (about 10 s) and registration (see
# apache-common.sh).
for pair in "$work:$ns_port" "$work/auth:$auth_ns_port"; do
    dir=${pair%:*} port=${pair##*:}
    for _ in $(seq 1 120); do
        grep -q "boot success" "$dir/broker.log" && break
        sleep 1
    done
    grep -q "boot success" "$dir/broker.log" || { echo "Apache's broker ($dir) did not start:" >&2; tail -50 "$dir/broker.log" >&2; exit 1; }
    for _ in $(seq 1 60); do
        registered "$port" && break
        sleep 1
    done
    registered "$port" || { echo "Apache's broker ($dir) did not register with its name server" >&2; exit 1; }
done
echo "Apache RocketMQ 5.5.0: name server 127.0.0.1:$ns_port, broker 127.0.0.1:$broker_port;" \
    "with ACL 2.0: name server 127.0.0.1:$auth_ns_port, broker 127.0.0.1:$auth_broker_port"

mvn -B -ntp test -Dtarget.namesrv="127.0.0.1:$ns_port" -Dtarget.broker="127.0.0.1:$broker_port" \
    -Dtarget.auth.namesrv="127.0.0.1:$auth_ns_port" -Dtarget.auth.broker="127.0.0.1:$auth_broker_port" "$@"
