package interop

// TestControllerModeFailoverUnderLoad: a broker group in controller mode
// (three `ferromq broker` processes, one `ferromq controller`, one
// `ferromq namesrv`, all separate processes) loses no acknowledged message
// while its master is SIGKILLed repeatedly under load from the official Go
// client.
//
// Every process is started by the test on free 127.0.0.1 ports, its stdout
// and stderr are captured (printed when the test fails) and it is stopped in
// t.Cleanup with SIGTERM, then SIGKILL, through its own process handle.
// Every wait is bounded.
//
// FERROMQ_FAILOVER_KILLS sets the number of master kills (default 3).

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

const (
	cmBrokerName    = "group-go"
	cmReadyTimeout  = 30 * time.Second
	cmStepTimeout   = 90 * time.Second  // every wait of the kill loop
	cmDrainTimeout  = 120 * time.Second // consumer catching up at the end
	cmAdminTimeout  = 10 * time.Second  // one `ferromq admin` invocation
	cmStartAttempts = 5                 // a restart on the same ports may race the old sockets
)

// ---------------------------------------------------------------------------
// Processes.
// ---------------------------------------------------------------------------

// cmNode is one logical ferromq process (name server, controller or broker).
// A broker is restarted with the same arguments after each kill; all its runs
// write into one output buffer.
type cmNode struct {
	t    *testing.T
	name string
	bin  string
	args []string
	addr string // the address it listens on (remoting)
	out  *syncBuffer

	mu   sync.Mutex
	run  *cmRun
	runs int
}

// cmRun is one OS process of a node.
type cmRun struct {
	n        int
	cmd      *exec.Cmd
	exited   chan struct{}
	exitErr  error
	expected atomic.Bool // the test killed or stopped it
	stopOnce sync.Once
}

func newCMNode(t *testing.T, name, addr string, args ...string) *cmNode {
	n := &cmNode{t: t, name: name, bin: ferromqBin(t), args: args, addr: addr, out: &syncBuffer{}}
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			t.Logf("---- ferromq %s output (%s) ----\n%s---- end ferromq %s output ----",
				n.name, n.addr, tail(n.out.String(), 96<<10), n.name)
		}
	})
	return n
}

func (n *cmNode) logf(format string, a ...interface{}) {
	fmt.Fprintf(n.out, "%s -- harness: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
}

// start launches a new run and waits (bounded) for the ready line. A run that
// exits before it is ready is retried (cmStartAttempts in all): a restarted
// broker may find its ports not yet released.
func (n *cmNode) start() {
	n.t.Helper()
	var lastErr error
	for attempt := 1; attempt <= cmStartAttempts; attempt++ {
		began := time.Now()
		err := n.startOnce()
		if err == nil {
			n.t.Logf("ferromq %s (%s) ready in %v (run %d)", n.name, n.addr, time.Since(began).Round(time.Millisecond), n.runs)
			return
		}
		lastErr = err
		if !strings.Contains(err.Error(), "exited before") {
			break
		}
		time.Sleep(time.Second)
	}
	n.t.Fatalf("ferromq %s: %v", n.name, lastErr)
}

func (n *cmNode) startOnce() error {
	cmd := exec.Command(n.bin, n.args...)
	cmd.Stdin = nil
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.runs++
	r := &cmRun{n: n.runs, cmd: cmd, exited: make(chan struct{})}
	n.mu.Unlock()
	fmt.Fprintf(n.out, "%s == run %d: $ %s %s\n", time.Now().Format("15:04:05.000"), r.n, n.bin, strings.Join(n.args, " "))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start: %v", err)
	}
	n.mu.Lock()
	n.run = r
	n.mu.Unlock()

	ready := make(chan struct{})
	var readyOnce sync.Once
	var pipes sync.WaitGroup
	pipes.Add(2)
	pump := func(rd io.Reader, tag string, watch bool) {
		defer pipes.Done()
		sc := bufio.NewScanner(rd)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintf(n.out, "%s %s| %s\n", time.Now().Format("15:04:05.000"), tag, line)
			if watch && strings.HasPrefix(line, readyMarker) {
				readyOnce.Do(func() { close(ready) })
			}
		}
		_, _ = io.Copy(io.Discard, rd)
	}
	go pump(stdout, "O", true)
	go pump(stderr, "E", false)
	go func() {
		pipes.Wait() // Wait must not be called before the pipes are drained
		r.exitErr = cmd.Wait()
		fmt.Fprintf(n.out, "%s -- run %d exited: %v\n", time.Now().Format("15:04:05.000"), r.n, describeExit(r.exitErr))
		close(r.exited)
	}()

	select {
	case <-ready:
		return nil
	case <-r.exited:
		r.expected.Store(true)
		return fmt.Errorf("run %d exited before printing %q: %v", r.n, readyMarker, describeExit(r.exitErr))
	case <-time.After(cmReadyTimeout):
		n.stopRun(r)
		return fmt.Errorf("run %d did not print %q within %v", r.n, readyMarker, cmReadyTimeout)
	}
}

func (n *cmNode) current() *cmRun {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.run
}

// kill SIGKILLs the current run (its own handle) and waits for it to go.
func (n *cmNode) kill() {
	n.t.Helper()
	r := n.current()
	if r == nil {
		return
	}
	r.stopOnce.Do(func() {
		r.expected.Store(true)
		n.logf("sending SIGKILL to run %d (pid %d)", r.n, r.cmd.Process.Pid)
		_ = r.cmd.Process.Kill()
		select {
		case <-r.exited:
		case <-time.After(stopTimeout):
			n.t.Fatalf("ferromq %s still running %v after SIGKILL", n.name, stopTimeout)
		}
	})
}

// stop: SIGTERM, then SIGKILL after stopTimeout.
func (n *cmNode) stop() {
	if r := n.current(); r != nil {
		n.stopRun(r)
	}
}

func (n *cmNode) stopRun(r *cmRun) {
	r.stopOnce.Do(func() {
		r.expected.Store(true)
		select {
		case <-r.exited:
			return
		default:
		}
		n.logf("sending SIGTERM to run %d", r.n)
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(stopTimeout):
			n.logf("no exit %v after SIGTERM, sending SIGKILL", stopTimeout)
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
	})
}

// crashed describes the current run's exit if the test did not cause it.
func (n *cmNode) crashed() string {
	r := n.current()
	if r == nil {
		return ""
	}
	select {
	case <-r.exited:
		if !r.expected.Load() {
			return fmt.Sprintf("ferromq %s (%s, run %d) exited on its own: %s", n.name, n.addr, r.n, describeExit(r.exitErr))
		}
	default:
	}
	return ""
}

// ---------------------------------------------------------------------------
// Ports.
// ---------------------------------------------------------------------------

type cmPorts struct {
	t    *testing.T
	used map[int]bool
}

// get returns a free port not handed out before; with vip, port-2 (the
// broker's VIP channel) must be free and unused too.
func (p *cmPorts) get(vip bool) int {
	p.t.Helper()
	for i := 0; i < 500; i++ {
		port := freePort(p.t)
		if p.used[port] || (vip && (port < 1026 || p.used[port-2] || !portFree(fmt.Sprintf("127.0.0.1:%d", port-2)))) {
			continue
		}
		p.used[port] = true
		if vip {
			p.used[port-2] = true
		}
		return port
	}
	p.t.Fatalf("no suitable free port found")
	return 0
}

// ---------------------------------------------------------------------------
// Controller view.
// ---------------------------------------------------------------------------

type cmReplica struct {
	BrokerID      int64  `json:"brokerId"`
	BrokerAddress string `json:"brokerAddress"`
	Alive         bool   `json:"alive"`
}

type cmGroupState struct {
	MasterBrokerID  int64       `json:"masterBrokerId"`
	MasterAddress   string      `json:"masterAddress"`
	MasterEpoch     int64       `json:"masterEpoch"`
	InSyncReplicas  []cmReplica `json:"inSyncReplicas"`
	NotInSyncReplic []cmReplica `json:"notInSyncReplicas"`
}

func (g *cmGroupState) String() string {
	if g == nil {
		return "<none>"
	}
	f := func(l []cmReplica) string {
		s := make([]string, 0, len(l))
		for _, r := range l {
			s = append(s, fmt.Sprintf("%d@%s(alive=%v)", r.BrokerID, r.BrokerAddress, r.Alive))
		}
		return "[" + strings.Join(s, " ") + "]"
	}
	return fmt.Sprintf("master %d@%s epoch %d, inSync %s, notInSync %s",
		g.MasterBrokerID, g.MasterAddress, g.MasterEpoch, f(g.InSyncReplicas), f(g.NotInSyncReplic))
}

// cmSyncState runs `ferromq admin getSyncStateSet -a ctl -b group-go --json`.
func cmSyncState(bin, ctl string) (*cmGroupState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmAdminTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "admin", "getSyncStateSet", "-a", ctl, "-b", cmBrokerName, "--json", "--log-level", "warn")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("getSyncStateSet: %v; stdout %q; stderr %q", err, tail(string(out), 2000), tail(stderr.String(), 2000))
	}
	var doc struct {
		ReplicasInfoTable map[string]*cmGroupState `json:"replicasInfoTable"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("getSyncStateSet: bad JSON (%v): %q", err, tail(string(out), 2000))
	}
	g := doc.ReplicasInfoTable[cmBrokerName]
	if g == nil {
		return nil, fmt.Errorf("getSyncStateSet: no %s in %q", cmBrokerName, tail(string(out), 2000))
	}
	return g, nil
}

// allInSync: a master exists and every address in want is an alive member of
// the in-sync set.
func (g *cmGroupState) allInSync(want []string) bool {
	if g == nil || g.MasterAddress == "" {
		return false
	}
	alive := map[string]bool{}
	for _, r := range g.InSyncReplicas {
		if r.Alive {
			alive[r.BrokerAddress] = true
		}
	}
	if !alive[g.MasterAddress] {
		return false
	}
	for _, a := range want {
		if !alive[a] {
			return false
		}
	}
	return true
}

// ---------------------------------------------------------------------------
// Load.
// ---------------------------------------------------------------------------

type cmAck struct {
	queue  int
	offset int64
	start  time.Time
	end    time.Time
}

// cmLoad is the producer's record.
type cmLoad struct {
	mu       sync.Mutex
	sent     int
	acked    map[string]cmAck
	okStarts []time.Time // send start of each SendOK, in order
	okEnds   []time.Time
	notAcked map[string]int    // kind -> count
	samples  map[string]string // kind -> first error text
	lastErr  string
}

func newCMLoad() *cmLoad {
	return &cmLoad{acked: map[string]cmAck{}, notAcked: map[string]int{}, samples: map[string]string{}}
}

func cmErrKind(err error) string {
	s := err.Error()
	switch {
	case strings.HasPrefix(s, "CODE: "):
		f := strings.Fields(strings.TrimPrefix(s, "CODE: "))
		if len(f) > 0 {
			return "code " + strings.TrimSuffix(f[0], ",")
		}
		return "code ?"
	case strings.Contains(s, "route info not found"):
		return "no route"
	case strings.Contains(s, "connection refused"):
		return "connection refused"
	case strings.Contains(s, "deadline exceeded") || strings.Contains(strings.ToLower(s), "timeout"):
		return "timeout"
	case strings.Contains(s, "EOF") || strings.Contains(s, "reset by peer") || strings.Contains(s, "broken pipe") ||
		strings.Contains(s, "closed"):
		return "connection lost"
	default:
		if len(s) > 60 {
			s = s[:60]
		}
		return "error: " + s
	}
}

func (l *cmLoad) record(body string, start, end time.Time, r *primitive.SendResult, err error) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent++
	var kind, text string
	switch {
	case err != nil:
		kind, text = cmErrKind(err), err.Error()
	case r == nil:
		kind, text = "nil result", "SendSync returned neither result nor error"
	case r.Status == primitive.SendOK:
		l.acked[body] = cmAck{queue: r.MessageQueue.QueueId, offset: r.QueueOffset, start: start, end: end}
		l.okStarts = append(l.okStarts, start)
		l.okEnds = append(l.okEnds, end)
		return true
	default:
		names := map[primitive.SendStatus]string{
			primitive.SendFlushDiskTimeout:  "status FlushDiskTimeout",
			primitive.SendFlushSlaveTimeout: "status FlushSlaveTimeout",
			primitive.SendSlaveNotAvailable: "status SlaveNotAvailable",
			primitive.SendUnknownError:      "status UnknownError",
		}
		kind = names[r.Status]
		if kind == "" {
			kind = fmt.Sprintf("status %d", r.Status)
		}
		text = r.String()
	}
	l.notAcked[kind]++
	if _, ok := l.samples[kind]; !ok {
		l.samples[kind] = fmt.Sprintf("%s (%s at %s)", text, body, end.Format("15:04:05.000"))
	}
	l.lastErr = fmt.Sprintf("%s: %s", kind, text)
	return false
}

// firstOKAfter returns when the first SendOK of a send started after t came back.
func (l *cmLoad) firstOKAfter(t time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := sort.Search(len(l.okStarts), func(i int) bool { return l.okStarts[i].After(t) })
	if i == len(l.okStarts) {
		return time.Time{}, false
	}
	return l.okEnds[i], true
}

func (l *cmLoad) counts() (sent, acked int, notAcked map[string]int, lastErr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	na := make(map[string]int, len(l.notAcked))
	for k, v := range l.notAcked {
		na[k] = v
	}
	return l.sent, len(l.acked), na, l.lastErr
}

func cmFormatCounts(m map[string]int) string {
	if len(m) == 0 {
		return "{}"
	}
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	parts := make([]string, 0, len(ks))
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func cmDurations(ds []time.Duration) (each string, p50, max time.Duration) {
	parts := make([]string, 0, len(ds))
	for _, d := range ds {
		parts = append(parts, d.Round(time.Millisecond).String())
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) > 0 {
		p50, max = s[(len(s)-1)/2], s[len(s)-1]
	}
	return "[" + strings.Join(parts, " ") + "]", p50.Round(time.Millisecond), max.Round(time.Millisecond)
}

// ---------------------------------------------------------------------------
// The test.
// ---------------------------------------------------------------------------

func TestControllerModeFailoverUnderLoad(t *testing.T) {
	testStart := time.Now()
	captureClientLog(t)
	kills := 3
	if v := os.Getenv("FERROMQ_FAILOVER_KILLS"); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 1 {
			t.Fatalf("FERROMQ_FAILOVER_KILLS=%q: want a positive integer", v)
		}
		kills = k
	}
	bin := ferromqBin(t)
	dir := t.TempDir()
	ports := &cmPorts{t: t, used: map[int]bool{}}

	// Name server and controller.
	nsAddr := fmt.Sprintf("127.0.0.1:%d", ports.get(false))
	ns := newCMNode(t, "namesrv", nsAddr, "namesrv", "--listen", nsAddr)
	ns.start()
	ctlAddr := fmt.Sprintf("127.0.0.1:%d", ports.get(false))
	ctlConf := filepath.Join(dir, "controller.conf")
	if err := os.WriteFile(ctlConf, []byte(fmt.Sprintf(
		"controllerDLegerPeers=n0-%s\ncontrollerDLegerSelfId=n0\ncontrollerStorePath=%s\nscanInactiveMasterInterval=500\n",
		ctlAddr, filepath.Join(dir, "ctl"))), 0o644); err != nil {
		t.Fatal(err)
	}
	ctl := newCMNode(t, "controller", ctlAddr, "controller", "-c", ctlConf)
	ctl.start()

	// Three brokers of one group.
	var brokers []*cmNode
	var brokerAddrs []string
	for _, name := range []string{"b1", "b2", "b3"} {
		addr := fmt.Sprintf("127.0.0.1:%d", ports.get(true))
		conf := filepath.Join(dir, name+".conf")
		if err := os.WriteFile(conf, []byte(fmt.Sprintf(
			"brokerName=%s\nenableControllerMode=true\ncontrollerAddr=%s\nnamesrvAddr=%s\nallAckInSyncStateSet=true\n"+
				"haListenPort=%d\nsyncBrokerMetadataPeriod=1000\ncontrollerHeartBeatTimeoutMills=3000\n",
			cmBrokerName, ctlAddr, nsAddr, ports.get(false))), 0o644); err != nil {
			t.Fatal(err)
		}
		b := newCMNode(t, name, addr, "broker", "-c", conf, "--data-dir", filepath.Join(dir, name), "--listen", addr)
		b.start()
		brokers = append(brokers, b)
		brokerAddrs = append(brokerAddrs, addr)
	}
	all := append([]*cmNode{ns, ctl}, brokers...)
	byAddr := func(addr string) *cmNode {
		for _, b := range brokers {
			if b.addr == addr {
				return b
			}
		}
		return nil
	}
	checkCrashes := func(when string) {
		t.Helper()
		for _, n := range all {
			if c := n.crashed(); c != "" {
				t.Fatalf("%s: %s", when, c)
			}
		}
	}

	// waitState polls the controller (bounded) until cond holds.
	var lastState *cmGroupState
	var lastStateErr error
	waitState := func(what string, timeout time.Duration, cond func(*cmGroupState) bool) *cmGroupState {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			checkCrashes("waiting for " + what)
			g, err := cmSyncState(bin, ctlAddr)
			lastState, lastStateErr = g, err
			if err == nil && cond(g) {
				return g
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %v waiting for %s; the controller's last answer: %v (error %v)", timeout, what, lastState, lastStateErr)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	inSync := func(g *cmGroupState) bool { return g.allInSync(brokerAddrs) }

	began := time.Now()
	g := waitState("a master and all three brokers in the in-sync set", cmStepTimeout, inSync)
	t.Logf("group in sync after %v: %v", time.Since(began).Round(time.Millisecond), g)

	// Topic with 4 queues on the master; every broker must hold it (slaves
	// copy the master's topic configs every syncBrokerMetadataPeriod).
	topic := uniq(t, "T")
	{
		ctx, cancel := context.WithTimeout(context.Background(), cmAdminTimeout)
		out, err := exec.CommandContext(ctx, bin, "admin", "updateTopic", "-n", nsAddr, "-b", g.MasterAddress,
			"-t", topic, "-r", "4", "-w", "4", "--log-level", "warn").CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("ferromq admin updateTopic on %s: %v\n%s", g.MasterAddress, err, out)
		}
	}
	if !waitFor(20*time.Second, func() bool { return routeExists(nsAddr, topic) }) {
		t.Fatalf("no route for %s on the name server within 20s of updateTopic", topic)
	}
	for _, b := range brokers {
		b := b
		if !waitFor(20*time.Second, func() bool {
			r, err := rawInvoke(b.addr, 21 /* GET_ALL_TOPIC_CONFIG */, nil, nil, 3*time.Second)
			return err == nil && r.Code == 0 && strings.Contains(string(r.Body), topic)
		}) {
			t.Fatalf("broker %s (%s) does not hold topic %s 20s after it was created on the master %s", b.name, b.addr, topic, g.MasterAddress)
		}
	}

	// Consumer, then producer.
	c := newCollector()
	startPushConsumer(t, nsAddr, topic, c, consumerOpts{from: consumer.ConsumeFromFirstOffset})
	p := newProducer(t, nsAddr, producer.WithRetry(2), producer.WithSendMsgTimeout(3*time.Second))
	load := newCMLoad()
	stopLoad := make(chan struct{})
	loadDone := make(chan struct{})
	var stopOnce sync.Once
	stopProducer := func() {
		stopOnce.Do(func() { close(stopLoad) })
		select {
		case <-loadDone:
		case <-time.After(30 * time.Second):
			t.Errorf("the producer goroutine did not stop within 30s")
		}
	}
	t.Cleanup(stopProducer) // runs before the producer's Shutdown (LIFO)
	go func() {
		defer close(loadDone)
		for n := 0; ; n++ {
			select {
			case <-stopLoad:
				return
			default:
			}
			body := fmt.Sprintf("m-%d", n)
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			r, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte(body)))
			cancel()
			if !load.record(body, start, time.Now(), r, err) {
				select { // do not spin while the group has no reachable master
				case <-stopLoad:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}
	}()
	if !waitFor(30*time.Second, func() bool { _, a, _, _ := load.counts(); return a > 0 }) {
		_, _, na, last := load.counts()
		t.Fatalf("the producer got no SendOK within 30s (not acknowledged %s; last %s)", cmFormatCounts(na), last)
	}

	// Kill loop.
	var failovers, elections []time.Duration
	for k := 1; k <= kills; k++ {
		began := time.Now()
		g := waitState(fmt.Sprintf("kill %d: all three brokers in sync", k), cmStepTimeout, inSync)
		t.Logf("kill %d: in sync after %v: %v", k, time.Since(began).Round(time.Millisecond), g)
		// Let the load run on the healthy group for a moment, and make sure
		// the producer is being acknowledged before the next kill.
		time.Sleep(2 * time.Second)
		mark := time.Now()
		if !waitFor(cmStepTimeout, func() bool { _, ok := load.firstOKAfter(mark); return ok }) {
			_, _, na, last := load.counts()
			t.Fatalf("kill %d: the producer got no SendOK within %v with all three brokers in sync (%v); not acknowledged %s; last %s",
				k, cmStepTimeout, g, cmFormatCounts(na), last)
		}
		victim := byAddr(g.MasterAddress)
		if victim == nil {
			t.Fatalf("kill %d: the controller's master %s is none of the brokers %v", k, g.MasterAddress, brokerAddrs)
		}
		_, ackedBefore, _, _ := load.counts()
		killAt := time.Now()
		victim.kill()
		t.Logf("kill %d: SIGKILLed master %s (%s, id %d, epoch %d) with %d messages acknowledged so far",
			k, victim.name, victim.addr, g.MasterBrokerID, g.MasterEpoch, ackedBefore)

		// The controller elects another master.
		ng := waitState(fmt.Sprintf("kill %d: a master other than %s", k, victim.addr), cmStepTimeout, func(n *cmGroupState) bool {
			return n.MasterAddress != "" && n.MasterAddress != victim.addr && n.MasterEpoch > g.MasterEpoch
		})
		elected := time.Since(killAt)
		elections = append(elections, elected)
		t.Logf("kill %d: controller named %s master (epoch %d) %v after the kill: %v",
			k, ng.MasterAddress, ng.MasterEpoch, elected.Round(time.Millisecond), ng)

		// Failover as the client sees it: first SendOK of a send started after the kill.
		deadline := killAt.Add(cmStepTimeout)
		var okAt time.Time
		for {
			checkCrashes(fmt.Sprintf("kill %d: waiting for the producer's first SendOK after the kill", k))
			if at, ok := load.firstOKAfter(killAt); ok {
				okAt = at
				break
			}
			if time.Now().After(deadline) {
				_, _, na, last := load.counts()
				st, err := cmSyncState(bin, ctlAddr)
				t.Fatalf("kill %d: the producer got no SendOK within %v of killing master %s; not acknowledged so far %s; last: %s; controller: %v (%v)",
					k, cmStepTimeout, victim.addr, cmFormatCounts(na), last, st, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		failovers = append(failovers, okAt.Sub(killAt))
		t.Logf("kill %d: first SendOK after the kill came %v after it", k, okAt.Sub(killAt).Round(time.Millisecond))

		// Restart the killed broker: same data dir, conf and port.
		victim.start()
	}
	began = time.Now()
	g = waitState("after the last kill: all three brokers in sync", cmStepTimeout, inSync)
	t.Logf("after the last kill: in sync after %v: %v", time.Since(began).Round(time.Millisecond), g)
	time.Sleep(2 * time.Second)
	stopProducer()
	checkCrashes("after the load")

	// Every acknowledged message must reach the consumer.
	load.mu.Lock()
	acked := make(map[string]cmAck, len(load.acked))
	for k, v := range load.acked {
		acked[k] = v
	}
	load.mu.Unlock()
	missing := func() []string {
		got := c.snapshot()
		var out []string
		for body := range acked {
			if got[body] == 0 {
				out = append(out, body)
			}
		}
		return out
	}
	drainStart := time.Now()
	drained := waitFor(cmDrainTimeout, func() bool { return len(missing()) == 0 })
	drainTime := time.Since(drainStart)
	if !drained {
		// Give stragglers no more time: report the figures as they are.
		t.Logf("consumer had not received every acknowledged message %v after the producer stopped", cmDrainTimeout)
	}
	time.Sleep(time.Second) // late duplicates
	got := c.snapshot()
	c.mu.Lock()
	deliveries := c.total
	c.mu.Unlock()
	lost := missing()
	sort.Slice(lost, func(i, j int) bool {
		a, _ := strconv.Atoi(strings.TrimPrefix(lost[i], "m-"))
		b, _ := strconv.Atoi(strings.TrimPrefix(lost[j], "m-"))
		return a < b
	})
	dupBodies, dupExtra, unackedReceived := 0, 0, 0
	var unackedBodies []string
	for body, n := range got {
		if n > 1 {
			dupBodies++
			dupExtra += n - 1
		}
		if _, ok := acked[body]; !ok {
			unackedReceived++
			unackedBodies = append(unackedBodies, body)
		}
	}
	sort.Strings(unackedBodies)
	sent, nAcked, notAcked, _ := load.counts()
	each, p50, max := cmDurations(failovers)
	elEach, elP50, elMax := cmDurations(elections)
	load.mu.Lock()
	samples := make([]string, 0, len(load.samples))
	for k, s := range load.samples {
		samples = append(samples, fmt.Sprintf("  %s: %s", k, s))
	}
	load.mu.Unlock()
	sort.Strings(samples)
	if len(samples) > 0 {
		t.Logf("first error of each not-acknowledged kind:\n%s", strings.Join(samples, "\n"))
	}
	t.Logf("consumer: %d distinct bodies, %d deliveries; %d received bodies were not acknowledged to the producer %s "+
		"(a send in flight at a kill can be stored and replicated yet fail at the client: allowed); drained %v after the producer stopped",
		len(got), deliveries, unackedReceived, abbrev(unackedBodies), drainTime.Round(time.Millisecond))
	t.Logf("controller elections (kill -> new master named): each %s, p50 %v, max %v", elEach, elP50, elMax)
	t.Logf("FAILOVER FIGURES: kills=%d sent=%d acknowledged=%d not-acknowledged=%d %s lost=%d duplicates=%d (extra deliveries %d) "+
		"failover(kill->first SendOK)=%s p50=%v max=%v runtime=%v",
		kills, sent, nAcked, sent-nAcked, cmFormatCounts(notAcked), len(lost), dupBodies, dupExtra,
		each, p50, max, time.Since(testStart).Round(time.Second))

	if len(lost) > 0 {
		var lines []string
		for i, body := range lost {
			if i == 20 {
				lines = append(lines, fmt.Sprintf("  ... (%d lost in all)", len(lost)))
				break
			}
			a := acked[body]
			lines = append(lines, fmt.Sprintf("  %s: queue %d offset %d, sent %s, SendOK %s",
				body, a.queue, a.offset, a.start.Format("15:04:05.000"), a.end.Format("15:04:05.000")))
		}
		// Each broker's queue ends, to tell whether the lost messages are
		// absent from the store or only never delivered.
		var ends []string
		for _, b := range brokers {
			var qs []string
			for q := 0; q < 4; q++ {
				r, err := rawInvoke(b.addr, codeGetMaxOffset, map[string]string{"topic": topic, "queueId": strconv.Itoa(q)}, nil, 3*time.Second)
				switch {
				case err != nil:
					qs = append(qs, fmt.Sprintf("q%d: %v", q, err))
				case r.Code != 0:
					qs = append(qs, fmt.Sprintf("q%d: code %d %s", q, r.Code, r.Remark))
				default:
					qs = append(qs, fmt.Sprintf("q%d=%s", q, r.ExtFields["offset"]))
				}
			}
			ends = append(ends, fmt.Sprintf("  %s (%s): %s", b.name, b.addr, strings.Join(qs, " ")))
		}
		t.Errorf("%d of %d acknowledged messages never reached the consumer (lost):\n%s\nqueue max offsets now:\n%s",
			len(lost), nAcked, strings.Join(lines, "\n"), strings.Join(ends, "\n"))
	}
}
