# What the scripts that start Apache RocketMQ beside the suites share: free 127.0.0.1 ports
# and the wait for the broker's registration. Sourced. `taken` (space-separated, with spaces
# at both ends) lists ports already handed out.

taken=${taken:-" "}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_free() { python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1',$1))" 2>/dev/null; }

# Sets broker_port to a port whose VIP channel (port - 2) and HA port (port + 1) are free
# too and not taken, and marks all three taken; fails after 50 tries.
pick_broker_port() {
    local p
    broker_port=""
    for _ in $(seq 1 50); do
        p=$(free_port)
        case "$taken" in *" $p "*|*" $((p - 2)) "*|*" $((p + 1)) "*) continue ;; esac
        if [ "$p" -gt 1026 ] && port_free $((p - 2)) && port_free $((p + 1)); then
            broker_port=$p
            taken="$taken$p $((p - 2)) $((p + 1)) "
            return 0
        fi
    done
    echo "no free port triple for Apache's broker" >&2
    return 1
}

# Whether the name server on port $1 knows broker-a (GET_BROKER_CLUSTER_INFO, 106). Apache
# logs "boot success" before its first registration lands; tests that look up the
# cluster's route must wait for this.
registered() {
    python3 - "$1" <<'PY'
import json, socket, struct, sys
header = json.dumps({"code": 106, "flag": 0, "language": "JAVA", "opaque": 1,
                     "serializeTypeCurrentRPC": "JSON", "version": 453}).encode()
frame = struct.pack(">ii", 4 + len(header), len(header)) + header
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3) as s:
        s.sendall(frame)
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
except OSError:
    sys.exit(1)
sys.exit(0 if b"broker-a" in data else 1)
PY
}
