//go:build linux

package interop

// TestControllerModePartition: a controller-mode broker group whose master is
// cut off by a network partition from the controller, the name server and
// both slaves (but not from the client) keeps one writer at a time and loses
// no acknowledged message once the partition heals.
//
// Layout. The test re-executes its own test binary under `unshare --net`, so
// everything runs in a fresh "lab" network namespace the test created (the
// namespace goes away with the run). Inside, the lab has lo and a bridge with
// 10.77.0.254/24, the address of the test process itself (the Go client and
// every `ferromq admin` call). Each node has its own network namespace, held
// by a child `unshare --net sleep <bounded>` of the test, joined to the bridge
// by a veth pair: "ctl" (10.77.0.1: `ferromq namesrv` :9876 and
// `ferromq controller` :9878) and b1, b2, b3 (10.77.0.11-13: `ferromq broker`
// :10911, HA :10912, brokerIP1 = the node's address). The ferromq processes
// are started with `nsenter -t <holder> -n`, which execs ferromq, so the test
// holds each process's own handle. Nothing is built inside a namespace.
//
// The partition is per address: on both ends of the master's veth (egress of
// the bridge port and egress of the master's own interface) an htb qdisc
// sends IPv4 packets to a blackhole qdisc unless they are from (resp. to) the
// client's 10.77.0.254; ARP and the client's traffic pass. Both ends are set
// up first and the two dropping filters added last, back to back. (This kernel has
// the u32 classifier and the htb and blackhole qdiscs but neither flower nor
// the gact "drop" action, and there is no iptables, hence the classify-into-
// a-blackhole construction.) The drops are silent, as in a real partition:
// senders see timeouts, not errors. The test checks that it holds: `ferromq
// admin` run inside the controller's and a slave's namespace cannot reach the
// master, nor the master the controller, while the client still can.
//
// Sequence, under SendSync load from the official Go client (retries 2,
// allAckInSyncStateSet=true, controllerHeartBeatTimeoutMills=3000, every
// outcome recorded): all three in sync; partition the master; from the cut
// until a second after the new master is seen, probe the partitioned master
// with a raw SEND_MESSAGE every 25 ms, each on its own connection (the client
// reaches it; the Go producer also keeps sending to it until its route
// refresh), so that writes arrive at it all through the time its lease may
// still run and the controller's election; wait for the controller to name
// another master at a higher epoch; wait for the client's first SendOK from
// the new master; hold the partition a few more seconds; heal; wait for all
// three in the in-sync set again (the old master now a slave); stop the load;
// consume the topic from the first offset with a new push consumer group.
//
// Checks, and what each proves:
//   - Nothing acknowledged lost: every SendOK body reaches the final consumer,
//     and at the store host and commit-log offset its offset message id (the
//     broker's own answer) named. A deposed master that acknowledged a write
//     would fail this: its log tail is cut back when it rejoins as a slave.
//   - One master per epoch, in what was stored: after healing, the three
//     brokers report identical epoch histories (`ferromq admin
//     getBrokerEpoch`: same epochs, same start offsets, same end), epochs
//     strictly increasing; the new master's epoch is among them. Every
//     acknowledged message's commit-log offset lies in exactly one epoch range
//     of that history, and its store host (from the message id) is the broker
//     the controller named master of that epoch (every (epoch, master) the
//     controller answered during the test is recorded; an epoch never seen is
//     reported, and then its acknowledged messages must at least share one
//     store host). A deposed master still writing would have stored messages
//     at offsets the history gives to the new master's epoch.
//   - The deposed master stored nothing once the new one was elected: every
//     record in its divergent tail (from the new epoch's start offset to its
//     log end, read from it with VIEW_MESSAGE_BY_ID before the heal) has a
//     store timestamp before the election instant, taken from the
//     controller's log line (one host, one clock; if the line is missing, the
//     time the test saw the new master, a poll later, is used and said so);
//     its log end (getBrokerEpoch, asked by the client) does not move from
//     the moment the new master is seen to just before the heal, although
//     probes and the producer keep sending to it; no probe is acknowledged and
//     none is in the final log; no SendOK came from it for a send started
//     after the election. With allAckInSyncStateSet=true a partitioned master
//     cannot get a SendOK without its slaves, so these checks on what was
//     stored, not only on what was acknowledged, are the ones that catch a
//     master taking writes after its replacement was elected (its lease
//     outliving the controller's patience).
//
// Apache's Java client too, when $FERROMQ_JAVA_PARTITION_CP gives the class
// path of interop/apache-tools' test classes (scripts/test.sh sets it): its
// program PartitionClient runs in the lab namespace beside the Go client
// (controller_partition_java_test.go), sending j-0, j-1, ... synchronously
// (two retries in 3 s, routes polled every second) and consuming the topic
// with a push consumer of its own group from the first offset. It must get a
// SEND_OK before the cut, after the election and after the heal; its
// acknowledged messages go through every check above with the Go client's;
// and its consumer must receive every acknowledged message of both clients.
// Without the variable the Java part is skipped, and the test says so.
//
// Requires root, unshare, nsenter, ip and tc; skips otherwise. Every wait and
// loop is bounded. Prints one line "PARTITION FIGURES: ...".

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

const (
	partLabEnv      = "FERROMQ_PARTITION_LAB" // set in the re-executed run inside the lab namespace
	partLabTimeout  = 6 * time.Minute         // -test.timeout of that run
	partBridge      = "fmqlab0"
	partClientIP    = "10.77.0.254"
	partCtlIP       = "10.77.0.1"
	partCmdTimeout  = 10 * time.Second // one ip/tc/nsenter command
	partReachWait   = 5 * time.Second  // one reachability check across the partition
	partElectWait   = 60 * time.Second // partition -> new master named
	partRouteWait   = 75 * time.Second // new master -> the client's first SendOK (route refresh every 30 s)
	partHealWait    = 120 * time.Second
	partMaxTailRecs = 10000 // records read from the deposed master's divergent tail
)

func TestControllerModePartition(t *testing.T) {
	if os.Getenv(partLabEnv) != "1" {
		runInNetLab(t, "TestControllerModePartition")
		return
	}
	partitionInLab(t)
}

// ---------------------------------------------------------------------------
// The lab: a network namespace of its own, node namespaces on a bridge.
// ---------------------------------------------------------------------------

// runInNetLab re-executes this test binary, running only test name, in a new
// network namespace (`unshare --net`), relaying its output line by line
// (prefixed "lab| "). The run there does the work; this one skips when the
// machine cannot host it.
func runInNetLab(t *testing.T, name string) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test creates network namespaces, veth pairs, a bridge and tc qdiscs")
	}
	for _, tool := range []string{"unshare", "nsenter", "ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	bin := ferromqBin(t)
	{
		ctx, cancel := context.WithTimeout(context.Background(), partCmdTimeout)
		out, err := exec.CommandContext(ctx, "unshare", "--net", "true").CombinedOutput()
		cancel()
		if err != nil {
			t.Skipf("`unshare --net true` fails here: %v %s", err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), partLabTimeout+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--net", os.Args[0],
		"-test.run=^"+name+"$", "-test.count=1", "-test.v", "-test.timeout="+partLabTimeout.String())
	cmd.Env = append(os.Environ(), partLabEnv+"=1", "FERROMQ_BIN="+bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	skipped := false
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "--- SKIP: "+name) {
			skipped = true
		}
		t.Log("lab| " + line)
	}
	err = cmd.Wait()
	switch {
	case err != nil:
		t.Fatalf("the run in the lab network namespace failed: %v (its output is above, lines prefixed lab|)", err)
	case skipped:
		t.Skip("skipped in the lab network namespace (reason above, lines prefixed lab|)")
	}
}

// netLab is the lab namespace this process runs in.
type netLab struct {
	t *testing.T
}

// netHost is one node's network namespace, held by a `sleep` child.
type netHost struct {
	lab     *netLab
	name    string
	ip      string
	pid     int    // the holder's pid
	labDev  string // veth end in the lab namespace, a bridge port
	hostDev string // veth end in the node's namespace
}

// newNetLab sets up the lab namespace: lo up, a bridge holding the client's
// address. It refuses to touch a namespace that has any link besides lo, so
// it never changes the network of the machine it runs on.
func newNetLab(t *testing.T) *netLab {
	l := &netLab{t: t}
	links := l.cmd("ip", "-o", "link", "show")
	for _, line := range strings.Split(strings.TrimSpace(links), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.TrimSuffix(f[1], ":") != "lo" {
			t.Fatalf("%s=1 but this network namespace has links besides lo; refusing to change it:\n%s", partLabEnv, links)
		}
	}
	l.cmd("ip", "link", "set", "lo", "up")
	l.cmd("ip", "link", "add", partBridge, "type", "bridge")
	l.cmd("ip", "addr", "add", partClientIP+"/24", "dev", partBridge)
	l.cmd("ip", "link", "set", partBridge, "up")
	return l
}

// cmd runs one command (bounded), failing the test if it fails.
func (l *netLab) cmd(argv ...string) string {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), partCmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("$ %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// addHost creates a node namespace with address ip/24 on the lab bridge.
func (l *netLab) addHost(name, ip string) *netHost {
	t := l.t
	t.Helper()
	// The holder sleeps no longer than this run may last.
	secs := int(partLabTimeout/time.Second) + 60
	if d, ok := t.Deadline(); ok {
		secs = int(time.Until(d)/time.Second) + 60
	}
	holder := exec.Command("unshare", "--net", "sleep", strconv.Itoa(secs))
	holder.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := holder.Start(); err != nil {
		t.Fatalf("start the namespace holder of %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = holder.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = holder.Process.Kill()
		select {
		case <-exited:
		case <-time.After(stopTimeout):
			t.Errorf("namespace holder of %s (pid %d) still running %v after SIGKILL", name, holder.Process.Pid, stopTimeout)
		}
	})
	h := &netHost{lab: l, name: name, ip: ip, pid: holder.Process.Pid, labDev: "vl-" + name, hostDev: "vn-" + name}
	// unshare(2) happens after the fork: wait until the holder is in a
	// namespace of its own before moving a link into it.
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	moved := false
	for i := 0; i < 100 && !moved; i++ {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", h.pid))
		moved = err == nil && ns != self
		if !moved {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !moved {
		t.Fatalf("the namespace holder of %s (pid %d) is not in a network namespace of its own after 5s", name, h.pid)
	}
	pid := strconv.Itoa(h.pid)
	l.cmd("ip", "link", "add", h.labDev, "type", "veth", "peer", "name", h.hostDev)
	l.cmd("ip", "link", "set", h.hostDev, "netns", pid)
	h.run("ip", "link", "set", "lo", "up")
	h.run("ip", "addr", "add", ip+"/24", "dev", h.hostDev)
	h.run("ip", "link", "set", h.hostDev, "up")
	l.cmd("ip", "link", "set", h.labDev, "master", partBridge)
	l.cmd("ip", "link", "set", h.labDev, "up")
	return h
}

// enter is the command prefix that runs a program in the node's namespace.
func (h *netHost) enter() []string {
	return []string{"nsenter", "-t", strconv.Itoa(h.pid), "-n", "--"}
}

func (h *netHost) run(argv ...string) string {
	h.lab.t.Helper()
	return h.lab.cmd(append(h.enter(), argv...)...)
}

// blackholeAllBut prepares dev's egress to drop every IPv4 packet whose field
// ("src" or "dst") is not keep: htb, default class 1:10 (pass), class 1:20
// leading to a blackhole qdisc, a u32 filter keep -> 1:10. The returned cut
// command, the u32 filter sending every other IPv4 packet to 1:20, arms it.
func blackholeAllBut(dev, field, keep string) (prepare [][]string, cut []string) {
	return [][]string{
			{"tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "10"},
			{"tc", "class", "add", "dev", dev, "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit", "quantum", "60000"},
			{"tc", "class", "add", "dev", dev, "parent", "1:", "classid", "1:20", "htb", "rate", "10gbit", "quantum", "60000"},
			{"tc", "qdisc", "add", "dev", dev, "parent", "1:20", "handle", "20:", "blackhole"},
			{"tc", "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "1", "u32", "match", "ip", field, keep + "/32", "flowid", "1:10"},
		},
		[]string{"tc", "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "2", "u32", "match", "u32", "0", "0", "flowid", "1:20"}
}

// isolate cuts h off from every address but keep, both ways. Both ends are
// prepared first and then armed one right after the other, so the two
// directions are cut a few milliseconds apart. It returns when the cut began.
func (l *netLab) isolate(h *netHost, keep string) time.Time {
	l.t.Helper()
	toNode, cutTo := blackholeAllBut(h.labDev, "src", keep)
	fromNode, cutFrom := blackholeAllBut(h.hostDev, "dst", keep)
	for _, c := range toNode {
		l.cmd(c...)
	}
	for _, c := range fromNode {
		h.run(c...)
	}
	at := time.Now()
	h.run(cutFrom...)
	l.cmd(cutTo...)
	return at
}

// heal removes what isolate added; it reports the packets dropped.
func (l *netLab) heal(h *netHost) string {
	l.t.Helper()
	stats := strings.TrimSpace(l.cmd("tc", "-s", "qdisc", "show", "dev", h.labDev)) + "\n" +
		strings.TrimSpace(h.run("tc", "-s", "qdisc", "show", "dev", h.hostDev))
	l.cmd("tc", "qdisc", "del", "dev", h.labDev, "root")
	h.run("tc", "qdisc", "del", "dev", h.hostDev, "root")
	return stats
}

// ---------------------------------------------------------------------------
// Store inspection.
// ---------------------------------------------------------------------------

type partEpoch struct {
	Epoch int64 `json:"epoch"`
	Start int64 `json:"startOffset"`
	End   int64 `json:"endOffset"`
}

type partEpochCache struct {
	BrokerID  int64       `json:"brokerId"`
	EpochList []partEpoch `json:"epochList"`
	MaxOffset int64       `json:"maxOffset"`
}

func (c *partEpochCache) String() string {
	if c == nil {
		return "<none>"
	}
	parts := make([]string, 0, len(c.EpochList))
	for _, e := range c.EpochList {
		parts = append(parts, fmt.Sprintf("e%d[%d,%d)", e.Epoch, e.Start, e.End))
	}
	return fmt.Sprintf("id %d max %d %s", c.BrokerID, c.MaxOffset, strings.Join(parts, " "))
}

// history: the epochs with their start offsets, and the log end.
func (c *partEpochCache) history() string {
	parts := make([]string, 0, len(c.EpochList))
	for _, e := range c.EpochList {
		parts = append(parts, fmt.Sprintf("%d@%d", e.Epoch, e.Start))
	}
	return fmt.Sprintf("%s end %d", strings.Join(parts, " "), c.MaxOffset)
}

// brokerEpochs runs `ferromq admin getBrokerEpoch -b addr --json`, in the
// namespace given by wrap (nil: this one).
func brokerEpochs(wrap []string, bin, nsAddr, addr string, timeout time.Duration) (*partEpochCache, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	argv := append(append(append([]string{}, wrap...), bin), "admin", "getBrokerEpoch", "-n", nsAddr, "-b", addr, "--json", "--log-level", "warn")
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("getBrokerEpoch -b %s: %v; stdout %q; stderr %q", addr, err, tail(string(out), 1000), tail(stderr.String(), 1000))
	}
	var rows []partEpochCache
	if err := json.Unmarshal(out, &rows); err != nil || len(rows) != 1 {
		return nil, fmt.Errorf("getBrokerEpoch -b %s: want a JSON array of one broker (%v): %q", addr, err, tail(string(out), 1000))
	}
	return &rows[0], nil
}

// epochAt returns the epoch whose [start, end) holds offset, and how many do.
func (c *partEpochCache) epochAt(offset int64) (int64, int) {
	var epoch int64 = -1
	n := 0
	for _, e := range c.EpochList {
		if e.Start <= offset && offset < e.End {
			epoch = e.Epoch
			n++
		}
	}
	return epoch, n
}

// viewMessage reads the record at a commit-log offset (VIEW_MESSAGE_BY_ID).
func viewMessage(addr string, offset int64) (*primitive.MessageExt, error) {
	r, err := rawInvoke(addr, 33 /* VIEW_MESSAGE_BY_ID */, map[string]string{"offset": strconv.FormatInt(offset, 10)}, nil, 3*time.Second)
	if err != nil {
		return nil, err
	}
	if r.Code != 0 {
		return nil, fmt.Errorf("VIEW_MESSAGE_BY_ID offset %d on %s: code %d %s", offset, addr, r.Code, r.Remark)
	}
	msgs := primitive.DecodeMessage(r.Body)
	if len(msgs) != 1 || msgs[0].StoreSize <= 0 {
		return nil, fmt.Errorf("VIEW_MESSAGE_BY_ID offset %d on %s: %d records decoded from %d bytes", offset, addr, len(msgs), len(r.Body))
	}
	return msgs[0], nil
}

// routeWatch polls the name server's master for a topic every 250 ms (at
// most 2400 times) and records each change.
type routeWatch struct {
	mu      sync.Mutex
	changes []routeChange
	quit    chan struct{}
	done    chan struct{}
	once    sync.Once
}

type routeChange struct {
	at   time.Time
	addr string // "" = no master in the route, "error: ..." = no answer
}

func watchRoute(nsAddr, topic string) *routeWatch {
	w := &routeWatch{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		last := "\x00"
		for i := 0; i < 2400; i++ {
			addr, err := routeMaster(nsAddr, topic)
			if err != nil {
				addr = "error: " + cmErrKind(err)
			}
			if addr != last {
				w.mu.Lock()
				w.changes = append(w.changes, routeChange{time.Now(), addr})
				w.mu.Unlock()
				last = addr
			}
			select {
			case <-w.quit:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *routeWatch) stop() {
	w.once.Do(func() {
		close(w.quit)
		select {
		case <-w.done:
		case <-time.After(10 * time.Second):
		}
	})
}

func (w *routeWatch) list() []routeChange {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]routeChange(nil), w.changes...)
}

var (
	rfc3339InLine = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
	epochInLine   = regexp.MustCompile(`\bepoch=(\d+)\b`)
)

// electionTime is when the controller elected the master of epoch, from its
// log line "... elected a new one ... epoch=<epoch>" (its own timestamp, the
// clock the brokers stamp records with). Without such a line it falls back to
// seen, when the test saw the new master (later than the election by up to a
// poll), and says so.
func electionTime(ctl *cmNode, epoch int64, seen time.Time) (time.Time, string) {
	for _, line := range strings.Split(ctl.out.String(), "\n") {
		if !strings.Contains(line, "elected a new one") {
			continue
		}
		m := epochInLine.FindStringSubmatch(line)
		if m == nil || m[1] != strconv.FormatInt(epoch, 10) {
			continue
		}
		if ts := rfc3339InLine.FindString(line); ts != "" {
			if at, err := time.Parse(time.RFC3339Nano, ts); err == nil {
				return at, "the controller's log"
			}
		}
	}
	return seen, "no election line in the controller's log: the time the test saw the new master, a poll later at most"
}

// ---------------------------------------------------------------------------
// The test, inside the lab.
// ---------------------------------------------------------------------------

func partitionInLab(t *testing.T) {
	testStart := time.Now()
	captureClientLog(t)
	bin := ferromqBin(t)
	dir := t.TempDir()
	lab := newNetLab(t)

	ctlHost := lab.addHost("ctl", partCtlIP)
	hosts := map[string]*netHost{}
	var brokerHosts []*netHost
	for i, name := range []string{"b1", "b2", "b3"} {
		h := lab.addHost(name, fmt.Sprintf("10.77.0.%d", 11+i))
		hosts[name] = h
		brokerHosts = append(brokerHosts, h)
	}
	pdeath := func(c *exec.Cmd) { c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
	node := func(h *netHost, name, addr string, args ...string) *cmNode {
		n := newCMNode(t, name, addr, args...)
		n.wrap, n.prepare = h.enter(), pdeath
		return n
	}

	// Name server and controller on ctl.
	nsAddr := partCtlIP + ":9876"
	ns := node(ctlHost, "namesrv", nsAddr, "namesrv", "--listen", nsAddr)
	ns.start()
	ctlAddr := partCtlIP + ":9878"
	ctlConf := cmWriteConf(t, dir, "controller", cmControllerConf(ctlAddr, filepath.Join(dir, "ctl")))
	ctl := node(ctlHost, "controller", ctlAddr, "controller", "-c", ctlConf)
	ctl.start()

	// Three brokers of one group, one per node.
	var brokers []*cmNode
	hostOf := map[*cmNode]*netHost{}
	for _, h := range brokerHosts {
		addr := h.ip + ":10911"
		conf := cmWriteConf(t, dir, h.name, cmBrokerConf(ctlAddr, nsAddr, 10912, "brokerIP1="+h.ip))
		b := node(h, h.name, addr, "broker", "-c", conf, "--data-dir", filepath.Join(dir, h.name), "--listen", addr)
		b.start()
		brokers = append(brokers, b)
		hostOf[b] = h
	}
	grp := newCMGroup(t, bin, ctlAddr, append([]*cmNode{ns, ctl}, brokers...), brokers)

	began := time.Now()
	g := grp.waitState("a master and all three brokers in the in-sync set", cmStepTimeout, grp.inSync)
	t.Logf("group in sync after %v: %v", time.Since(began).Round(time.Millisecond), g)
	topic := uniq(t, "P")
	grp.createTopic(nsAddr, g.MasterAddress, topic)
	route := watchRoute(nsAddr, topic)
	t.Cleanup(route.stop)

	// Load.
	p := newProducer(t, nsAddr, producer.WithRetry(2), producer.WithSendMsgTimeout(3*time.Second))
	load := newCMLoad()
	stopLoad := load.startLoad(t, p, topic)
	okWithin := func(what string, since time.Time, timeout time.Duration) time.Time {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			grp.checkCrashes("waiting for " + what)
			if at, ok := load.firstOKAfter(since); ok {
				return at
			}
			if time.Now().After(deadline) {
				_, _, na, last := load.counts()
				t.Fatalf("no SendOK %s within %v; not acknowledged so far %s; last: %s", what, timeout, cmFormatCounts(na), last)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	okWithin("at all", time.Time{}, 30*time.Second)
	// Apache's Java client beside it, when its class path is given.
	jc := startJavaLabClient(t, nsAddr, topic, dir)
	if jc != nil {
		at := jc.okWithin(grp, "at all", time.Time{}, javaStartWait)
		t.Logf("the Java client's first SEND_OK %v after it was started", at.Sub(jc.started).Round(time.Millisecond))
	}
	time.Sleep(3 * time.Second)
	inSyncAt := time.Now()
	okWithin("with all three in sync", inSyncAt, 30*time.Second)
	if jc != nil {
		jc.okWithin(grp, "with all three in sync", inSyncAt, 30*time.Second)
	}

	// ---- Partition the master. ----
	g1 := grp.waitState("all three in sync before the partition", cmStepTimeout, grp.inSync)
	old := grp.byAddr(g1.MasterAddress)
	if old == nil {
		t.Fatalf("the controller's master %s is none of the brokers", g1.MasterAddress)
	}
	oldHost := hostOf[old]
	var slaveHosts []*netHost
	for _, b := range brokers {
		if b != old {
			slaveHosts = append(slaveHosts, hostOf[b])
		}
	}
	partAt := lab.isolate(oldHost, partClientIP)
	ackedBefore := 0
	for _, a := range load.ackedCopy() {
		if a.end.Before(partAt) {
			ackedBefore++
		}
	}
	t.Logf("partitioned master %s (%s, epoch %d) from everything but the client %s; %d messages acknowledged so far",
		old.name, old.addr, g1.MasterEpoch, partClientIP, ackedBefore)

	// Probes: from the cut until a second after the new master is seen, a
	// raw SEND_MESSAGE straight to the partitioned master every 25 ms, each on
	// its own connection (the client can still reach it). While its lease
	// lasts it stores them (no slave can acknowledge: FLUSH_SLAVE_TIMEOUT);
	// after, it must refuse them without storing.
	probes := startProbes(old.addr, topic, probeOpts{prefix: "probe", interval: 25 * time.Millisecond, timeout: 8 * time.Second, max: 800})
	t.Cleanup(probes.stop)

	// Does the partition hold? Checked in the background while the
	// controller notices, from the namespaces on both sides.
	type reach struct {
		what string
		want bool // reachable?
		err  error
	}
	reachDone := make(chan []reach, 1)
	go func() {
		checks := []struct {
			what string
			want bool
			run  func() error
		}{
			{"client -> master", true, func() error {
				_, err := brokerEpochs(nil, bin, nsAddr, old.addr, partReachWait)
				return err
			}},
			{"controller node -> master", false, func() error {
				_, err := brokerEpochs(ctlHost.enter(), bin, nsAddr, old.addr, partReachWait)
				return err
			}},
			{fmt.Sprintf("slave %s -> master", slaveHosts[0].name), false, func() error {
				_, err := brokerEpochs(slaveHosts[0].enter(), bin, nsAddr, old.addr, partReachWait)
				return err
			}},
			{"master -> controller", false, func() error {
				ctx, cancel := context.WithTimeout(context.Background(), partReachWait)
				defer cancel()
				argv := append(oldHost.enter(), bin, "admin", "getSyncStateSet", "-a", ctlAddr, "-b", cmBrokerName, "--json", "--log-level", "warn")
				return exec.CommandContext(ctx, argv[0], argv[1:]...).Run()
			}},
		}
		out := make([]reach, len(checks))
		var wg sync.WaitGroup
		for i, c := range checks {
			i, c := i, c
			wg.Add(1)
			go func() { defer wg.Done(); out[i] = reach{c.what, c.want, c.run()} }()
		}
		wg.Wait()
		reachDone <- out
	}()

	// The controller names another master.
	ng := grp.waitState("a master other than the partitioned "+old.addr, partElectWait, func(n *cmGroupState) bool {
		return n.MasterAddress != "" && n.MasterAddress != old.addr && n.MasterEpoch > g1.MasterEpoch
	})
	electedAt := time.Now()
	t.Logf("the controller named %s master at epoch %d, seen %v after the partition: %v",
		ng.MasterAddress, ng.MasterEpoch, electedAt.Sub(partAt).Round(time.Millisecond), ng)
	newMaster := grp.byAddr(ng.MasterAddress)
	if newMaster == nil {
		t.Fatalf("the new master %s is none of the brokers", ng.MasterAddress)
	}
	oldAtElection, err := brokerEpochs(nil, bin, nsAddr, old.addr, cmAdminTimeout)
	if err != nil {
		t.Fatalf("the deposed master, asked by the client right after the election: %v", err)
	}
	t.Logf("deposed master %s's log when the new master was seen: %v", old.name, oldAtElection)

	// The controller's own record of the election instant (its log line; the
	// test saw the new master up to a poll later).
	electionAt, electionSrc := electionTime(ctl, ng.MasterEpoch, electedAt)
	electedAfter := electionAt.Sub(partAt)
	t.Logf("election instant: %s, %v after the cut (%s)", electionAt.Format("15:04:05.000000"), electedAfter.Round(time.Millisecond), electionSrc)
	time.Sleep(time.Second)
	probes.stop()
	probeSummary, probesTaken := probes.summary()
	t.Logf("probes sent straight to the partitioned master: %s", probeSummary)
	if probesTaken > 0 {
		t.Errorf("the partitioned master %s acknowledged %d probe writes (it has no slave to acknowledge them, and was deposed at %s)",
			old.addr, probesTaken, electionAt.Format("15:04:05.000"))
	}

	// The client's first SendOK after the election: from the new master.
	firstOK := okWithin("after the new master was named", electedAt, partRouteWait)
	t.Logf("first SendOK of a send started after the election came %v after the partition",
		firstOK.Sub(partAt).Round(time.Millisecond))
	javaFirstOK := time.Duration(-1)
	if jc != nil {
		at := jc.okWithin(grp, "after the new master was named", electedAt, partRouteWait)
		javaFirstOK = at.Sub(partAt)
		t.Logf("the Java client's first SEND_OK of a send started after the election came %v after the partition",
			javaFirstOK.Round(time.Millisecond))
	}
	time.Sleep(3 * time.Second) // the new master takes writes while the old one is still cut off

	// The deposed master's store, read by the client before the heal.
	oldAtHeal, err := brokerEpochs(nil, bin, nsAddr, old.addr, cmAdminTimeout)
	if err != nil {
		t.Fatalf("the deposed master, asked by the client before the heal: %v", err)
	}
	if oldAtHeal.MaxOffset != oldAtElection.MaxOffset || oldAtHeal.history() != oldAtElection.history() {
		t.Errorf("the deposed master %s stored writes while %s was master: its log was %v when the new master was seen and %v before the heal",
			old.addr, ng.MasterAddress, oldAtElection, oldAtHeal)
	}
	newAtHeal, err := brokerEpochs(nil, bin, nsAddr, newMaster.addr, cmAdminTimeout)
	if err != nil {
		t.Fatalf("the new master before the heal: %v", err)
	}
	newEpochStart := int64(-1)
	for _, e := range newAtHeal.EpochList {
		if e.Epoch == ng.MasterEpoch {
			newEpochStart = e.Start
		}
	}
	if newEpochStart < 0 {
		t.Fatalf("the new master %s has no epoch %d in its log: %v", newMaster.addr, ng.MasterEpoch, newAtHeal)
	}
	t.Logf("before the heal: new master %s %v; deposed master %s %v", newMaster.name, newAtHeal, old.name, oldAtHeal)
	for _, e := range oldAtHeal.EpochList {
		if e.Epoch >= ng.MasterEpoch {
			t.Errorf("the deposed master %s, cut off from the controller, has epoch %d in its log: %v", old.addr, e.Epoch, oldAtHeal)
		}
	}
	// Its divergent tail: what it stored past the point where the new master's
	// epoch begins. Every record must predate the moment the new master was seen.
	tailRecords, tailProbes := 0, 0
	var tailLatest int64
	if oldAtHeal.MaxOffset < newEpochStart {
		t.Errorf("the deposed master's log ends at %d, before the new epoch's start %d", oldAtHeal.MaxOffset, newEpochStart)
	}
	for off := newEpochStart; off < oldAtHeal.MaxOffset; {
		if tailRecords == partMaxTailRecs {
			t.Errorf("more than %d records in the deposed master's tail [%d, %d)", partMaxTailRecs, newEpochStart, oldAtHeal.MaxOffset)
			break
		}
		m, err := viewMessage(old.addr, off)
		if err != nil {
			t.Errorf("reading the deposed master's tail at %d (tail [%d, %d)): %v", off, newEpochStart, oldAtHeal.MaxOffset, err)
			break
		}
		tailRecords++
		if m.StoreTimestamp > tailLatest {
			tailLatest = m.StoreTimestamp
		}
		if m.StoreTimestamp >= electionAt.UnixMilli() {
			t.Errorf("two masters took writes at the same time: the deposed master %s stored %q (offset %d) at %s, "+
				"after the controller elected %s master of epoch %d at %s",
				old.addr, m.Body, off, time.UnixMilli(m.StoreTimestamp).Format("15:04:05.000"), ng.MasterAddress, ng.MasterEpoch,
				electionAt.Format("15:04:05.000000"))
		}
		if strings.HasPrefix(string(m.Body), "probe-") {
			tailProbes++
		}
		off += int64(m.StoreSize)
	}
	latest, margin := "-", "-"
	if tailRecords > 0 {
		latest = time.UnixMilli(tailLatest).Format("15:04:05.000")
		margin = fmt.Sprintf("%dms", electionAt.UnixMilli()-tailLatest)
	}
	t.Logf("deposed master's divergent tail [%d, %d): %d records (%d probes), latest stored %s; cut at %s, election %s, new master seen %s",
		newEpochStart, oldAtHeal.MaxOffset, tailRecords, tailProbes, latest, partAt.Format("15:04:05.000"),
		electionAt.Format("15:04:05.000"), electedAt.Format("15:04:05.000"))

	// A partition that does not hold makes the rest meaningless: stop. A
	// failed check above does not stop the test: the heal and the final
	// checks still run, so one run reports everything it can.
	select {
	case rs := <-reachDone:
		holds := true
		for _, r := range rs {
			t.Logf("during the partition: %s reachable=%v (%v)", r.what, r.err == nil, r.err)
			if (r.err == nil) != r.want {
				holds = false
				t.Errorf("the partition does not hold: %s reachable=%v, want %v (%v)", r.what, r.err == nil, r.want, r.err)
			}
		}
		if !holds {
			t.FailNow()
		}
	case <-time.After(2 * partReachWait):
		t.Fatalf("the reachability checks did not finish")
	}

	// ---- Heal. ----
	healAt := time.Now()
	partitionHeld := healAt.Sub(partAt)
	stats := lab.heal(oldHost)
	t.Logf("healed after %v; tc on the master's veth ends:\n%s", partitionHeld.Round(time.Millisecond), stats)
	hg := grp.waitState("all three in sync after the heal", partHealWait, grp.inSync)
	healedAfter := time.Since(healAt)
	t.Logf("all three in sync %v after the heal: %v", healedAfter.Round(time.Millisecond), hg)
	time.Sleep(2 * time.Second)
	afterHeal := time.Now()
	okWithin("after the heal", afterHeal, partRouteWait)
	if jc != nil {
		jc.okWithin(grp, "after the heal", afterHeal, partRouteWait)
		jc.stopProducing()
	}
	stopLoad()
	grp.checkCrashes("after the load")

	// Where the name server sent writers: its master for the topic over time.
	// It must end on the controller's master. Time after the heal with any
	// other answer (none, or the old master) is reported and counted in the
	// figures, not failed: writers then get errors (no route, or a slave's
	// refusal), which costs availability, not data.
	if !waitFor(40*time.Second, func() bool { a, err := routeMaster(nsAddr, topic); return err == nil && a == hg.MasterAddress }) {
		a, err := routeMaster(nsAddr, topic)
		t.Errorf("the name server's master for %s is %q (%v) 40s after all three were in sync under master %s", topic, a, err, hg.MasterAddress)
	}
	route.stop()
	routeEnd := time.Now()
	changes := route.list()
	var routeLines []string
	routeToNew := time.Duration(-1)
	var routeOffAfterHeal time.Duration
	for i, c := range changes {
		routeLines = append(routeLines, fmt.Sprintf("%s %q", c.at.Format("15:04:05.000"), c.addr))
		if routeToNew < 0 && c.at.After(partAt) && c.addr == ng.MasterAddress {
			routeToNew = c.at.Sub(partAt)
		}
		from, to := c.at, routeEnd
		if i+1 < len(changes) {
			to = changes[i+1].at
		}
		if from.Before(healAt) {
			from = healAt
		}
		if c.addr != hg.MasterAddress && to.After(from) {
			routeOffAfterHeal += to.Sub(from)
			t.Logf("SUSPICIOUS: from %v to %v after the heal the name server's master for the topic was %q, not the controller's master %s",
				from.Sub(healAt).Round(time.Millisecond), to.Sub(healAt).Round(time.Millisecond), c.addr, hg.MasterAddress)
		}
	}
	t.Logf("the name server's master for the topic (changes): %s", strings.Join(routeLines, "; "))

	// ---- Epoch histories: identical on the three brokers. ----
	var final []*partEpochCache
	same := waitFor(30*time.Second, func() bool {
		final = final[:0]
		for _, b := range brokers {
			c, err := brokerEpochs(nil, bin, nsAddr, b.addr, cmAdminTimeout)
			if err != nil {
				final = append(final, nil)
				continue
			}
			final = append(final, c)
		}
		for _, c := range final {
			if c == nil || c.history() != final[0].history() {
				return false
			}
		}
		return true
	})
	var hists []string
	for i, b := range brokers {
		hists = append(hists, fmt.Sprintf("  %s (%s): %v", b.name, b.addr, final[i]))
	}
	t.Logf("epoch histories after the heal:\n%s", strings.Join(hists, "\n"))
	if !same {
		t.Fatalf("the brokers' epoch histories differ 30s after the load stopped (same epoch must start at the same offset, same end):\n%s",
			strings.Join(hists, "\n"))
	}
	hist := final[0]
	foundNew := false
	for i, e := range hist.EpochList {
		if i > 0 && (e.Epoch <= hist.EpochList[i-1].Epoch || e.Start < hist.EpochList[i-1].Start) {
			t.Errorf("epoch history out of order: %v", hist)
		}
		if e.Epoch == ng.MasterEpoch {
			foundNew = true
			if e.Start != newEpochStart {
				t.Errorf("epoch %d starts at %d after the heal, at %d on the new master before it", e.Epoch, e.Start, newEpochStart)
			}
		}
	}
	if !foundNew {
		t.Errorf("the new master's epoch %d is not in the final history %v", ng.MasterEpoch, hist)
	}

	// ---- Consume everything from the final master. ----
	type delivery struct {
		offset int64
		host   string
	}
	var dmu sync.Mutex
	got := map[string][]delivery{}
	handler := func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		dmu.Lock()
		defer dmu.Unlock()
		for _, m := range msgs {
			got[string(m.Body)] = append(got[string(m.Body)], delivery{m.CommitLogOffset, m.StoreHost})
		}
		return consumer.ConsumeSuccess, nil
	}
	startConsumer(t, nsAddr, topic, consumer.MessageSelector{}, handler, consumerOpts{from: consumer.ConsumeFromFirstOffset})
	acked := load.ackedCopy()
	// The Java client's acknowledged messages (j-N) go through every check below
	// with the Go client's (m-N): consumed by the final consumer at the place
	// their SEND_OK named, in the right epoch, none from the deposed master.
	var js *javaSends
	if jc != nil {
		js = jc.sends()
		for body, a := range js.acked {
			acked[body] = a
		}
	}
	missing := func() []string {
		dmu.Lock()
		defer dmu.Unlock()
		var out []string
		for body := range acked {
			if len(got[body]) == 0 {
				out = append(out, body)
			}
		}
		return out
	}
	drainStart := time.Now()
	if !waitFor(cmDrainTimeout, func() bool { return len(missing()) == 0 }) {
		t.Logf("the consumer had not received every acknowledged message %v after it started", cmDrainTimeout)
	}
	drainTime := time.Since(drainStart)
	time.Sleep(time.Second) // late duplicates
	lost := missing()
	sortBodies(lost)

	// The Java client's own consumer: every acknowledged message of both
	// clients must reach it as well.
	javaFigures := "java=skipped (" + javaPartitionCPEnv + " unset)"
	var javaMissing []string
	if jc != nil {
		var jgot map[string][]javaDelivery
		jmissing := func() []string {
			jgot = jc.received()
			var out []string
			for body := range acked {
				if len(jgot[body]) == 0 {
					out = append(out, body)
				}
			}
			return out
		}
		jDrainStart := time.Now()
		if !waitFor(cmDrainTimeout, func() bool { jc.checkAlive("draining"); return len(jmissing()) == 0 }) {
			t.Logf("the Java consumer had not received every acknowledged message %v after the final consumer drained", cmDrainTimeout)
		}
		jDrain := time.Since(jDrainStart)
		time.Sleep(time.Second) // late duplicates
		javaMissing = jmissing()
		sortBodies(javaMissing)
		jc.finish()
		jDup, jLost := 0, 0
		var jTimes []time.Time
		for _, ds := range jgot {
			if len(ds) > 1 {
				jDup++
			}
			for _, d := range ds {
				jTimes = append(jTimes, d.delivered)
			}
		}
		// The Java consumer's longest time without a delivery while both
		// producers were sending (until the heal's last check).
		sort.Slice(jTimes, func(a, b int) bool { return jTimes[a].Before(jTimes[b]) })
		var jGap time.Duration
		var jGapAt time.Time
		for i := 1; i < len(jTimes) && jTimes[i].Before(afterHeal); i++ {
			if g := jTimes[i].Sub(jTimes[i-1]); g > jGap {
				jGap, jGapAt = g, jTimes[i-1]
			}
		}
		t.Logf("the Java consumer's longest time without a delivery under load: %v from %s (partition %s, election %s, heal %s)",
			jGap.Round(time.Millisecond), jGapAt.Format("15:04:05.000"), partAt.Format("15:04:05.000"),
			electionAt.Format("15:04:05.000"), healAt.Format("15:04:05.000"))
		for _, body := range lost {
			if strings.HasPrefix(body, "j-") {
				jLost++
			}
		}
		jNotAcked := js.sent - len(js.acked)
		if s := js.errorSamples(); s != "" {
			t.Logf("the Java client's first error of each not-acknowledged kind:\n%s", s)
		}
		javaFigures = fmt.Sprintf("java-sent=%d java-acknowledged=%d java-not-acknowledged=%d %s java-lost=%d "+
			"java-consumer-missing=%d java-consumer-duplicates=%d java-consumer-longest-gap=%v partition->java-first-SEND_OK=%v "+
			"java-consumer-caught-up=%v",
			js.sent, len(js.acked), jNotAcked, cmFormatCounts(js.notAcked), jLost, len(javaMissing), jDup,
			jGap.Round(time.Millisecond), javaFirstOK.Round(time.Millisecond), jDrain.Round(time.Millisecond))
	}

	masters := grp.mastersSeen()
	var epochsSeen []string
	for e, m := range masters {
		epochsSeen = append(epochsSeen, fmt.Sprintf("%d:%s", e, m.addr))
	}
	sort.Strings(epochsSeen)
	t.Logf("masters the controller named (epoch:master): %s", strings.Join(epochsSeen, " "))

	dmu.Lock()
	dupBodies, probesStored, unackedStored := 0, 0, 0
	var unackedBodies []string
	for body, ds := range got {
		if len(ds) > 1 {
			dupBodies++
		}
		if strings.HasPrefix(body, "probe-") {
			probesStored++
		}
		if _, ok := acked[body]; !ok {
			unackedStored++
			unackedBodies = append(unackedBodies, body)
		}
	}
	var misplaced, wrongEpoch, lateFromOld []string
	perEpochHosts := map[int64]map[string]int{}
	ackedPerEpoch := map[int64]int{}
	for body, a := range acked {
		host, off, err := decodeOffsetMsgID(a.msgID)
		if err != nil {
			misplaced = append(misplaced, fmt.Sprintf("%s: %v", body, err))
			continue
		}
		if host == old.addr && a.start.After(electionAt) {
			lateFromOld = append(lateFromOld, fmt.Sprintf("%s (sent %s, SendOK %s)", body, a.start.Format("15:04:05.000"), a.end.Format("15:04:05.000")))
		}
		if ds := got[body]; len(ds) > 0 {
			at := false
			for _, d := range ds {
				at = at || (d.offset == off && d.host == host)
			}
			if !at {
				misplaced = append(misplaced, fmt.Sprintf("%s: acknowledged by %s at commit-log offset %d, stored %v", body, host, off, ds))
			}
		}
		epoch, n := hist.epochAt(off)
		if n != 1 {
			wrongEpoch = append(wrongEpoch, fmt.Sprintf("%s: offset %d in %d epoch ranges of %v", body, off, n, hist))
			continue
		}
		ackedPerEpoch[epoch]++
		if perEpochHosts[epoch] == nil {
			perEpochHosts[epoch] = map[string]int{}
		}
		perEpochHosts[epoch][host]++
		if m, ok := masters[epoch]; ok && m.addr != host {
			wrongEpoch = append(wrongEpoch, fmt.Sprintf("%s: acknowledged by %s at offset %d, in epoch %d, whose master was %s",
				body, host, off, epoch, m.addr))
		}
	}
	dmu.Unlock()
	var unseen []string
	for epoch, hs := range perEpochHosts {
		if _, ok := masters[epoch]; ok {
			continue
		}
		unseen = append(unseen, fmt.Sprintf("epoch %d: acknowledged by %v", epoch, hs))
		if len(hs) > 1 {
			wrongEpoch = append(wrongEpoch, fmt.Sprintf("epoch %d (its master never seen): messages acknowledged by %d brokers %v", epoch, len(hs), hs))
		}
	}
	if len(unseen) > 0 {
		sort.Strings(unseen)
		t.Logf("epochs whose master the test never saw the controller name: %s", strings.Join(unseen, "; "))
	}
	sort.Strings(misplaced)
	sort.Strings(wrongEpoch)
	sort.Strings(lateFromOld)

	sent, nAcked, notAcked, _ := load.counts()
	if s := load.errorSamples(); s != "" {
		t.Logf("first error of each not-acknowledged kind:\n%s", s)
	}
	sortBodies(unackedBodies)
	t.Logf("acknowledged per epoch: %v; consumer: %d distinct bodies (%d stored though not acknowledged %s: allowed, a send in flight "+
		"at the cut can be stored and replicated yet fail at the client), drained in %v",
		ackedPerEpoch, len(got), unackedStored, abbrev(unackedBodies), drainTime.Round(time.Millisecond))
	t.Logf("PARTITION FIGURES: sent=%d acknowledged=%d not-acknowledged=%d %s lost=%d duplicates=%d misplaced=%d wrong-epoch=%d "+
		"probes=%d probes-taken=%d deposed-tail-records=%d last-deposed-store->election=%s "+
		"partition->election=%v partition->route-to-new-master=%v partition->first-SendOK=%v partition-held=%v "+
		"heal->all-in-sync=%v route-off-master-after-heal=%v %s runtime=%v",
		sent, nAcked, sent-nAcked, cmFormatCounts(notAcked), len(lost), dupBodies, len(misplaced), len(wrongEpoch),
		probes.count(), probesTaken+probesStored, tailRecords, margin,
		electedAfter.Round(time.Millisecond), routeToNew.Round(time.Millisecond), firstOK.Sub(partAt).Round(time.Millisecond),
		partitionHeld.Round(time.Millisecond), healedAfter.Round(time.Millisecond), routeOffAfterHeal.Round(time.Millisecond),
		javaFigures, time.Since(testStart).Round(time.Second))

	if len(lost) > 0 {
		t.Errorf("%d of %d acknowledged messages (m-N: Go client, j-N: Java client) never reached the consumer (lost):\n%s\nqueue max offsets now:\n%s",
			len(lost), len(acked), cmLostLines(lost, acked), grp.queueEnds(topic))
	}
	if len(javaMissing) > 0 {
		t.Errorf("%d of %d acknowledged messages (m-N: Go client, j-N: Java client) never reached the Java client's consumer: %s",
			len(javaMissing), len(acked), strings.Join(head(javaMissing, 20), ", "))
	}
	if len(misplaced) > 0 {
		t.Errorf("%d acknowledged messages are not where their SendOK said:\n  %s", len(misplaced), strings.Join(head(misplaced, 20), "\n  "))
	}
	if len(wrongEpoch) > 0 {
		t.Errorf("%d acknowledged messages are stored in an epoch another broker was master of:\n  %s", len(wrongEpoch), strings.Join(head(wrongEpoch, 20), "\n  "))
	}
	if len(lateFromOld) > 0 {
		t.Errorf("%d SendOKs from the deposed master %s for sends started after the controller elected %s: %s",
			len(lateFromOld), old.addr, ng.MasterAddress, strings.Join(head(lateFromOld, 20), ", "))
	}
	if probesStored > 0 {
		t.Errorf("%d probe messages sent only to the deposed master are in the final log", probesStored)
	}
}
