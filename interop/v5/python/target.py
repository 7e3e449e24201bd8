"""The server under test: FerroMQ's standalone binary (default) or Apache RocketMQ 5.5.0 (TARGET=apache).

Both are started on free 127.0.0.1 ports for one pytest session and stopped by PID. Topics and
groups are created through `Target.create`, which runs FerroMQ's `admin` or Apache's mqadmin.
"""
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
V5 = HERE.parent
REPO = V5.parent.parent

# The broker settings both targets run with (Apache: apache-local.sh writes the same lines).
BROKER_CONF = """brokerClusterName=DefaultCluster
brokerName=broker-a
brokerIP1=127.0.0.1
autoCreateTopicEnable=false
autoCreateSubscriptionGroup=true
flushDiskType=SYNC_FLUSH
transactionCheckInterval=2000
transactionTimeOut=6000
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepts(addr, timeout=1.0):
    host, port = addr.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
        return True
    except OSError:
        return False


def read_env(path):
    env = {}
    for line in pathlib.Path(path).read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            env[k.strip()] = v.strip().strip('"')
    return env


class Target:
    kind = "?"
    grpc = namesrv = broker = ""
    log_hint = ""

    def create(self, topics=None, groups=None):
        """topics: {name: "NORMAL"|"FIFO"|"DELAY"|"TRANSACTION"};
        groups: {name: {"orderly": bool, "retries": int}}. One call for all of them."""
        commands = []
        for name, kind in (topics or {}).items():
            commands.append(["updateTopic", "-n", self.namesrv, "-c", "DefaultCluster", "-t", name,
                             "-a", f"+message.type={kind}"])
        for name, opts in (groups or {}).items():
            cmd = ["updateSubGroup", "-n", self.namesrv, "-c", "DefaultCluster", "-g", name,
                   "-r", str(opts.get("retries", 16))]
            if opts.get("orderly"):
                cmd += ["-o", "true"]
            commands.append(cmd)
        if commands:
            self._admin(commands)

    def _admin(self, commands):
        raise NotImplementedError

    def stop(self):
        pass


class FerroMQ(Target):
    kind = "ferromq"

    def __init__(self):
        default = REPO / "target" / "release" / "ferromq"
        self.bin = os.environ.get("FERROMQ_BIN", str(default))
        if not os.access(self.bin, os.X_OK):
            raise RuntimeError(f"FERROMQ_BIN={self.bin} is not an executable (build it, or TARGET=apache)")
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="ferromq-v5-python-"))
        conf = self.dir / "broker.conf"
        conf.write_text(BROKER_CONF)
        ports = set()
        while len(ports) < 3:
            ports.add(free_port())
        p1, p2, p3 = sorted(ports)
        self.namesrv, self.broker, self.grpc = (f"127.0.0.1:{p}" for p in (p1, p2, p3))
        self.log = self.dir / "ferromq.log"
        self.log_hint = str(self.log)
        cmd = [self.bin, "standalone", "--data-dir", str(self.dir / "data"),
               "--namesrv-listen", self.namesrv, "--broker-listen", self.broker,
               "--grpc-listen", self.grpc, "--no-dashboard", "-c", str(conf)]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.log.read_text()[-3000:]
                self.stop()
                raise RuntimeError(f"ferromq exited with {self.proc.returncode}:\n{log}")
            if accepts(self.grpc) and accepts(self.namesrv):
                return
            time.sleep(0.2)
        log = self.log.read_text()[-3000:]
        self.stop()
        raise RuntimeError(f"ferromq did not accept on {self.grpc} within 60 s:\n{log}")

    def _admin(self, commands):
        for cmd in commands:
            r = subprocess.run([self.bin, "admin", *cmd], capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise RuntimeError(f"ferromq admin {' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if os.environ.get("KEEP_DATA") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)


class Apache(Target):
    """Apache RocketMQ 5.5.0 via interop/v5/apache-local.sh. APACHE_STATE=dir reuses an instance
    already started with `apache-local.sh start dir` (and leaves it running)."""
    kind = "apache"

    def __init__(self):
        reuse = os.environ.get("APACHE_STATE")
        if reuse:
            self.state = pathlib.Path(reuse)
            self.owned = False
        else:
            self.state = pathlib.Path(tempfile.mkdtemp(prefix="apache-v5-python-"))
            self.owned = True
            r = subprocess.run([str(V5 / "apache-local.sh"), "start", str(self.state)],
                               capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                raise RuntimeError(f"apache-local.sh start failed:\n{r.stdout}\n{r.stderr}")
        env = read_env(self.state / "env")
        self.namesrv, self.grpc, self.broker = env["NAMESRV"], env["GRPC"], env["BROKER"]
        self.log_hint = env.get("LOGS", "")

    def _admin(self, commands):
        text = "".join(" ".join(c) + "\n" for c in commands)
        r = subprocess.run([str(self.state / "mqadmin-batch")], input=text, capture_output=True,
                           text=True, timeout=180)
        sections = r.stdout.split("### ")[1:]
        failed = [s for s in sections if "success" not in s]
        if r.returncode != 0 or len(sections) != len(commands) or failed:
            raise RuntimeError(f"mqadmin failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")

    def stop(self):
        if self.owned:
            subprocess.run([str(V5 / "apache-local.sh"), "stop", str(self.state)], timeout=120)
            if os.environ.get("KEEP_DATA") != "1":
                shutil.rmtree(self.state, ignore_errors=True)


class Attached(Target):
    """A target another process started (the xdist controller): addresses and how to run admin."""

    def __init__(self, info):
        self.kind, self.grpc, self.namesrv, self.broker = info["kind"], info["grpc"], info["namesrv"], info["broker"]
        self.log_hint = info.get("log_hint", "")
        self.admin_cmd = info["admin_cmd"]

    def _admin(self, commands):
        for cmd in commands:
            r = subprocess.run([*self.admin_cmd, *cmd], capture_output=True, text=True, timeout=120)
            if r.returncode != 0 or (self.kind == "apache" and "success" not in r.stdout):
                raise RuntimeError(f"{' '.join(self.admin_cmd + cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")


def describe(t):
    """What a worker process needs to use target t (see Attached)."""
    admin = [t.bin, "admin"] if isinstance(t, FerroMQ) else [str(t.state / "mqadmin")]
    return {"kind": t.kind, "grpc": t.grpc, "namesrv": t.namesrv, "broker": t.broker,
            "log_hint": t.log_hint, "admin_cmd": admin}


def start_target():
    kind = os.environ.get("TARGET", "ferromq").lower()
    if kind == "apache":
        return Apache()
    if kind == "ferromq":
        return FerroMQ()
    raise RuntimeError(f"TARGET={kind}: expected ferromq or apache")
