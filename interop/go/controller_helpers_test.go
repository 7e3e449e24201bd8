package interop

// Shared helpers of the controller-mode tests (controller_failover_test.go,
// controller_partition_test.go): ferromq processes with their own handles and
// captured output, the controller's view of a broker group through
// `ferromq admin getSyncStateSet`, bounded waits on it, and a SendSync load
// that records every outcome. The processes, ports and config files serve the
// classic master/slave test too (slave_read_test.go).

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
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

// cmNode is one logical ferromq process (name server, controller or broker,
// in controller mode or not).
// A broker is restarted with the same arguments after each kill; all its runs
// write into one output buffer.
type cmNode struct {
	t    *testing.T
	name string
	bin  string
	args []string
	addr string // the address it listens on (remoting)
	out  *syncBuffer
	// wrap, when set, is the command the process is started through, ahead
	// of bin (e.g. nsenter into a network namespace, which then execs bin,
	// so the process handle is still ferromq's own); prepare, when set,
	// adjusts each command before it starts.
	wrap    []string
	prepare func(*exec.Cmd)

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
	paused   atomic.Bool // SIGSTOPed by the test and not yet continued
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
	argv := append(append(append([]string{}, n.wrap...), n.bin), n.args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = nil
	if n.prepare != nil {
		n.prepare(cmd)
	}
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
	fmt.Fprintf(n.out, "%s == run %d: $ %s\n", time.Now().Format("15:04:05.000"), r.n, strings.Join(argv, " "))
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

// pause SIGSTOPs the current run (its own handle) and waits (bounded) until
// the kernel reports it stopped (state T in /proc/<pid>/stat); it returns when
// it was first seen stopped, the start of the fault: a request being handled
// when the signal was sent may still have been answered before that.
func (n *cmNode) pause() time.Time {
	n.t.Helper()
	r := n.current()
	if r == nil {
		n.t.Fatalf("ferromq %s: nothing to pause", n.name)
	}
	pid := r.cmd.Process.Pid
	n.logf("sending SIGSTOP to run %d (pid %d)", r.n, pid)
	r.paused.Store(true)
	if err := r.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		n.t.Fatalf("ferromq %s: SIGSTOP pid %d: %v", n.name, pid, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		state, err := cmProcState(pid)
		if err != nil {
			n.t.Fatalf("ferromq %s: state of pid %d after SIGSTOP: %v", n.name, pid, err)
		}
		if state == "T" {
			at := time.Now()
			n.logf("run %d (pid %d) seen stopped", r.n, pid)
			return at
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("ferromq %s: pid %d is in state %q, not stopped (T), 5s after SIGSTOP", n.name, pid, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// resume SIGCONTs the current run after pause.
func (n *cmNode) resume() {
	n.t.Helper()
	r := n.current()
	if r == nil {
		n.t.Fatalf("ferromq %s: nothing to resume", n.name)
	}
	n.logf("sending SIGCONT to run %d (pid %d)", r.n, r.cmd.Process.Pid)
	if err := r.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		n.t.Fatalf("ferromq %s: SIGCONT pid %d: %v", n.name, r.cmd.Process.Pid, err)
	}
	r.paused.Store(false)
}

// cmProcState is the one-letter state of pid from /proc/<pid>/stat (Linux):
// R running, S sleeping, T stopped, Z zombie, ...
func cmProcState(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name, in parentheses, may hold spaces
	if i < 0 || i+3 > len(s) {
		return "", fmt.Errorf("unexpected /proc/%d/stat: %q", pid, tail(s, 200))
	}
	return s[i+2 : i+3], nil
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
		if r.paused.Load() { // a stopped process acts on SIGTERM only once continued
			_ = r.cmd.Process.Signal(syscall.SIGCONT)
		}
		select {
		case <-r.exited:
		case <-time.After(stopTimeout):
			n.logf("no exit %v after SIGTERM, sending SIGKILL", stopTimeout)
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
	})
}

// cmCheckCrashes fails the test if any of nodes exited on its own.
func cmCheckCrashes(t *testing.T, when string, nodes []*cmNode) {
	t.Helper()
	for _, n := range nodes {
		if s := n.crashed(); s != "" {
			t.Fatalf("%s: %s", when, s)
		}
	}
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
// Config files.
// ---------------------------------------------------------------------------

// cmWriteConf writes text to dir/<name>.conf and returns the path.
func cmWriteConf(t *testing.T, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name+".conf")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// cmControllerConf is the controller.conf of a single-node controller at
// ctlAddr that keeps its state in storePath.
func cmControllerConf(ctlAddr, storePath string) string {
	return fmt.Sprintf("controllerDLegerPeers=n0-%s\ncontrollerDLegerSelfId=n0\ncontrollerStorePath=%s\nscanInactiveMasterInterval=500\n",
		ctlAddr, storePath)
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
	offset int64  // queue offset
	msgID  string // the broker's offset message id: store host and commit-log offset
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
		l.acked[body] = cmAck{queue: r.MessageQueue.QueueId, offset: r.QueueOffset, msgID: r.OffsetMsgID, start: start, end: end}
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
	return cmFirstOKAfter(l.okStarts, l.okEnds, t)
}

// cmFirstOKAfter: the end of the first acknowledged send that started after
// since, given the starts (ascending: sends are sequential) and ends of all
// acknowledged sends.
func cmFirstOKAfter(okStarts, okEnds []time.Time, since time.Time) (time.Time, bool) {
	i := sort.Search(len(okStarts), func(i int) bool { return okStarts[i].After(since) })
	if i == len(okStarts) {
		return time.Time{}, false
	}
	return okEnds[i], true
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
// A running group: crash checks and bounded waits on the controller's view.
// ---------------------------------------------------------------------------

// cmGroup watches the processes of one test (name servers, controllers,
// brokers) and the controller's view of the broker group.
type cmGroup struct {
	t       *testing.T
	bin     string
	ctlAddr string
	nodes   []*cmNode // every process: a crash of any fails the test
	brokers []*cmNode

	mu           sync.Mutex
	lastState    *cmGroupState
	lastStateErr error
	// masters: every (epoch, master) pair the controller was seen to answer,
	// with when it was first seen.
	masters map[int64]cmMasterSeen
}

type cmMasterSeen struct {
	addr string
	at   time.Time
}

func newCMGroup(t *testing.T, bin, ctlAddr string, nodes, brokers []*cmNode) *cmGroup {
	return &cmGroup{t: t, bin: bin, ctlAddr: ctlAddr, nodes: nodes, brokers: brokers, masters: map[int64]cmMasterSeen{}}
}

func (c *cmGroup) brokerAddrs() []string {
	out := make([]string, 0, len(c.brokers))
	for _, b := range c.brokers {
		out = append(out, b.addr)
	}
	return out
}

func (c *cmGroup) byAddr(addr string) *cmNode {
	for _, b := range c.brokers {
		if b.addr == addr {
			return b
		}
	}
	return nil
}

// checkCrashes fails the test if any process exited on its own.
func (c *cmGroup) checkCrashes(when string) {
	c.t.Helper()
	cmCheckCrashes(c.t, when, c.nodes)
}

// state asks the controller once, recording the master it names.
func (c *cmGroup) state() (*cmGroupState, error) {
	g, err := cmSyncState(c.bin, c.ctlAddr)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastState, c.lastStateErr = g, err
	if err == nil && g.MasterAddress != "" {
		if seen, ok := c.masters[g.MasterEpoch]; !ok {
			c.masters[g.MasterEpoch] = cmMasterSeen{addr: g.MasterAddress, at: time.Now()}
		} else if seen.addr != g.MasterAddress {
			// The controller named two masters for one epoch: record both.
			c.t.Errorf("the controller named master %s for epoch %d, which it had given to %s (first seen %s)",
				g.MasterAddress, g.MasterEpoch, seen.addr, seen.at.Format("15:04:05.000"))
		}
	}
	return g, err
}

// mastersSeen returns a copy of the epoch -> master record.
func (c *cmGroup) mastersSeen() map[int64]cmMasterSeen {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.masters)
}

// waitState polls the controller (every 200 ms, bounded by timeout) until
// cond holds, failing the test on a crash or at the deadline.
func (c *cmGroup) waitState(what string, timeout time.Duration, cond func(*cmGroupState) bool) *cmGroupState {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c.checkCrashes("waiting for " + what)
		g, err := c.state()
		if err == nil && cond(g) {
			return g
		}
		if time.Now().After(deadline) {
			c.mu.Lock()
			last, lastErr := c.lastState, c.lastStateErr
			c.mu.Unlock()
			c.t.Fatalf("timed out after %v waiting for %s; the controller's last answer: %v (error %v)", timeout, what, last, lastErr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// inSync: a master and every broker of the group alive in the in-sync set.
func (c *cmGroup) inSync(g *cmGroupState) bool { return g.allInSync(c.brokerAddrs()) }

// cmBrokerConf is the broker.conf of a controller-mode broker of group-go;
// extra lines (key=value) are appended.
func cmBrokerConf(ctlAddr, nsAddr string, haPort int, extra ...string) string {
	s := fmt.Sprintf("brokerName=%s\nenableControllerMode=true\ncontrollerAddr=%s\nnamesrvAddr=%s\nallAckInSyncStateSet=true\n"+
		"haListenPort=%d\nsyncBrokerMetadataPeriod=1000\ncontrollerHeartBeatTimeoutMills=3000\n",
		cmBrokerName, ctlAddr, nsAddr, haPort)
	for _, e := range extra {
		s += e + "\n"
	}
	return s
}

// createTopic creates topic with 4 queues on the master and waits (bounded)
// until the name server routes it and every broker holds it (slaves copy the
// master's topic configs every syncBrokerMetadataPeriod).
func (c *cmGroup) createTopic(nsAddr, masterAddr, topic string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmAdminTimeout)
	out, err := exec.CommandContext(ctx, c.bin, "admin", "updateTopic", "-n", nsAddr, "-b", masterAddr,
		"-t", topic, "-r", "4", "-w", "4", "--log-level", "warn").CombinedOutput()
	cancel()
	if err != nil {
		c.t.Fatalf("ferromq admin updateTopic on %s: %v\n%s", masterAddr, err, out)
	}
	if !waitFor(20*time.Second, func() bool { return routeExists(nsAddr, topic) }) {
		c.t.Fatalf("no route for %s on the name server within 20s of updateTopic", topic)
	}
	for _, b := range c.brokers {
		b := b
		if !waitFor(20*time.Second, func() bool {
			r, err := rawInvoke(b.addr, 21 /* GET_ALL_TOPIC_CONFIG */, nil, nil, 3*time.Second)
			return err == nil && r.Code == 0 && strings.Contains(string(r.Body), topic)
		}) {
			c.t.Fatalf("broker %s (%s) does not hold topic %s 20s after it was created on the master %s", b.name, b.addr, topic, masterAddr)
		}
	}
}

// queueEnds describes each broker's max offset of queues 0-3 of topic, to tell
// whether missing messages are absent from the store or only undelivered.
func (c *cmGroup) queueEnds(topic string) string {
	var ends []string
	for _, b := range c.brokers {
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
	return strings.Join(ends, "\n")
}

// startLoad sends m-0, m-1, ... to topic with SendSync, one at a time (10 s
// context each), recording every outcome, pausing 50 ms after a failure. The
// returned stop ends it (bounded, idempotent); it also runs in t.Cleanup,
// which must come before the producer's Shutdown (register it after).
func (l *cmLoad) startLoad(t *testing.T, p rocketmq.Producer, topic string) (stop func()) {
	stopLoad := make(chan struct{})
	loadDone := make(chan struct{})
	var stopOnce sync.Once
	stop = func() {
		stopOnce.Do(func() { close(stopLoad) })
		select {
		case <-loadDone:
		case <-time.After(30 * time.Second):
			t.Errorf("the producer goroutine did not stop within 30s")
		}
	}
	t.Cleanup(stop)
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
			if !l.record(body, start, time.Now(), r, err) {
				select { // do not spin while the group has no reachable master
				case <-stopLoad:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}
	}()
	return stop
}

// ackedCopy returns a copy of the acknowledged messages.
func (l *cmLoad) ackedCopy() map[string]cmAck {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.acked)
}

// errorSamples: the first error of each not-acknowledged kind, one a line.
func (l *cmLoad) errorSamples() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return cmFormatSamples(l.samples)
}

// cmFormatSamples: kind -> first error text, sorted, one "  kind: text" a line.
func cmFormatSamples(samples map[string]string) string {
	out := make([]string, 0, len(samples))
	for k, s := range samples {
		out = append(out, fmt.Sprintf("  %s: %s", k, s))
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// sortBodies sorts <prefix>-<n> bodies (m-<n>, j-<n>, probe-<n>) by prefix,
// then by n.
func sortBodies(list []string) {
	key := func(s string) (string, int) {
		i := strings.LastIndexByte(s, '-')
		n, _ := strconv.Atoi(s[i+1:])
		return s[:i+1], n
	}
	sort.Slice(list, func(i, j int) bool {
		pa, a := key(list[i])
		pb, b := key(list[j])
		if pa != pb {
			return pa < pb
		}
		return a < b
	})
}

// ---------------------------------------------------------------------------
// Raw writes straight to one broker, and what the name server routes.
// ---------------------------------------------------------------------------

// rawSendExt is the extFields of a SEND_MESSAGE (code 10) to queue 0 of topic.
func rawSendExt(topic string) map[string]string {
	return map[string]string{
		"producerGroup": "raw-probe", "topic": topic, "defaultTopic": "TBW102", "defaultTopicQueueNums": "4",
		"queueId": "0", "sysFlag": "0", "bornTimestamp": strconv.FormatInt(time.Now().UnixMilli(), 10), "flag": "0",
		"properties": "", "reconsumeTimes": "0", "unitMode": "false", "batch": "false",
	}
}

// rawSend sends one message with SEND_MESSAGE (code 10) straight to addr, on
// a connection of its own, waiting up to timeout for the answer.
func rawSend(addr, topic, body string, timeout time.Duration) (*remotingCmd, error) {
	return rawInvoke(addr, 10 /* SEND_MESSAGE */, rawSendExt(topic), []byte(body), timeout)
}

// decodeOffsetMsgID splits a 32-hex offset message id: IPv4 store host, port,
// commit-log offset.
func decodeOffsetMsgID(id string) (host string, offset int64, err error) {
	b, err := hex.DecodeString(id)
	if err != nil || len(b) != 16 {
		return "", 0, fmt.Errorf("offset message id %q: want 32 hex digits (IPv4 store host)", id)
	}
	return fmt.Sprintf("%s:%d", net.IP(b[0:4]).String(), binary.BigEndian.Uint32(b[4:8])), int64(binary.BigEndian.Uint64(b[8:16])), nil
}

var (
	brokerAddrsInRoute = regexp.MustCompile(`"brokerAddrs"\s*:\s*\{([^}]*)\}`)
	brokerAddrEntry    = regexp.MustCompile(`"?(-?\d+)"?\s*:\s*"([^"]*)"`)
)

// routeBrokers is the name server's brokerId -> address table of topic's
// route (every broker group of it, merged); empty when the route has none.
func routeBrokers(nsAddr, topic string) (map[string]string, error) {
	r, err := rawInvoke(nsAddr, codeGetRouteInfo, map[string]string{"topic": topic}, nil, 3*time.Second)
	if err != nil {
		return nil, err
	}
	if r.Code != 0 {
		return nil, fmt.Errorf("GET_ROUTEINFO_BY_TOPIC %s: code %d %s", topic, r.Code, r.Remark)
	}
	out := map[string]string{}
	for _, m := range brokerAddrsInRoute.FindAllStringSubmatch(string(r.Body), -1) {
		for _, e := range brokerAddrEntry.FindAllStringSubmatch(m[1], -1) {
			out[e[1]] = e[2]
		}
	}
	return out, nil
}

// routeMaster is the address the name server gives for brokerId 0 (the
// master, where clients send) in topic's route; "" when the route has none.
func routeMaster(nsAddr, topic string) (string, error) {
	addrs, err := routeBrokers(nsAddr, topic)
	if err != nil {
		return "", err
	}
	return addrs["0"], nil
}

// probeOpts: a probe every interval (at most max of them), with bodies
// <prefix>-0, <prefix>-1, ... Each waits up to timeout for its answer.
// oneConn: all on one connection (pipelined, answers matched by opaque; a
// new connection only when that one fails), as a client with a stale route
// would send them; else each on a connection of its own.
type probeOpts struct {
	prefix   string
	interval time.Duration
	timeout  time.Duration
	max      int
	oneConn  bool
}

// probeStream sends raw SEND_MESSAGE probes straight to one broker until
// stopped (bounded by probeOpts.max), recording every outcome. Probes sent
// to a stopped (SIGSTOPed) process wait in its socket until it continues
// (a connection of its own each would also wait in its accept queue, which
// overflows after ~128: hence oneConn for a paused broker).
type probeStream struct {
	addr, topic string
	opts        probeOpts
	mu          sync.Mutex
	results     []probeResult
	pending     map[int32]probePending // oneConn: sent, not yet answered
	conns       []net.Conn             // oneConn: every connection opened
	readers     sync.WaitGroup         // oneConn: one reader per connection
	quit        chan struct{}
	launched    chan struct{} // closed when no more probes start
	inflight    sync.WaitGroup
	once        sync.Once
}

type probeResult struct {
	body     string
	sent     time.Time
	answered time.Time
	code     int // -1: no answer
	remark   string
	err      error
}

type probePending struct {
	body string
	sent time.Time
	conn net.Conn
}

func startProbes(addr, topic string, o probeOpts) *probeStream {
	ps := &probeStream{addr: addr, topic: topic, opts: o, pending: map[int32]probePending{},
		quit: make(chan struct{}), launched: make(chan struct{})}
	go func() {
		defer close(ps.launched)
		tick := time.NewTicker(o.interval)
		defer tick.Stop()
		var conn net.Conn // oneConn: the current connection, nil after a failure
		for n := 0; n < o.max; n++ {
			select {
			case <-ps.quit:
				return
			case <-tick.C:
			}
			body := fmt.Sprintf("%s-%d", o.prefix, n)
			if o.oneConn {
				conn = ps.sendOnConn(conn, body)
				continue
			}
			ps.inflight.Add(1)
			go func() {
				defer ps.inflight.Done()
				sent := time.Now()
				r, err := rawSend(addr, topic, body, o.timeout)
				res := probeResult{body: body, sent: sent, answered: time.Now(), code: -1, err: err}
				if err == nil {
					res.code, res.remark = r.Code, r.Remark
				}
				ps.mu.Lock()
				ps.results = append(ps.results, res)
				ps.mu.Unlock()
			}()
		}
	}()
	return ps
}

// sendOnConn writes one probe on conn (dialled first when nil) and returns
// the connection to use next (nil when this one failed; its reader then
// records its unanswered probes).
func (ps *probeStream) sendOnConn(conn net.Conn, body string) net.Conn {
	sent := time.Now()
	fail := func(err error) {
		ps.mu.Lock()
		ps.results = append(ps.results, probeResult{body: body, sent: sent, answered: time.Now(), code: -1, err: err})
		ps.mu.Unlock()
	}
	frame, opaque, err := rawRequest(10 /* SEND_MESSAGE */, rawSendExt(ps.topic), []byte(body))
	if err != nil {
		fail(err)
		return conn
	}
	if conn == nil {
		c, err := net.DialTimeout("tcp", ps.addr, 3*time.Second)
		if err != nil {
			fail(fmt.Errorf("dial %s: %v", ps.addr, err))
			return nil
		}
		conn = c
		ps.mu.Lock()
		ps.conns = append(ps.conns, c)
		ps.mu.Unlock()
		ps.readers.Add(1)
		go ps.read(c)
	}
	ps.mu.Lock()
	ps.pending[opaque] = probePending{body: body, sent: sent, conn: conn}
	ps.mu.Unlock()
	_ = conn.SetWriteDeadline(time.Now().Add(ps.opts.timeout))
	if _, err := conn.Write(frame); err != nil {
		ps.mu.Lock()
		if _, ok := ps.pending[opaque]; ok {
			delete(ps.pending, opaque)
			ps.results = append(ps.results, probeResult{body: body, sent: sent, answered: time.Now(), code: -1,
				err: fmt.Errorf("write to %s: %v", ps.addr, err)})
		}
		ps.mu.Unlock()
		_ = conn.Close() // its reader records the others pending on it
		return nil
	}
	return conn
}

// read records the answers arriving on conn; when conn fails or is closed,
// every probe still pending on it is recorded unanswered.
func (ps *probeStream) read(conn net.Conn) {
	defer ps.readers.Done()
	for {
		cmd, err := readFrame(conn)
		now := time.Now()
		ps.mu.Lock()
		if err != nil {
			for op, p := range ps.pending {
				if p.conn == conn {
					delete(ps.pending, op)
					ps.results = append(ps.results, probeResult{body: p.body, sent: p.sent, answered: now, code: -1,
						err: fmt.Errorf("connection to %s: %v", ps.addr, err)})
				}
			}
			ps.mu.Unlock()
			_ = conn.Close()
			return
		}
		if p, ok := ps.pending[cmd.Opaque]; ok && cmd.Flag&1 == 1 {
			delete(ps.pending, cmd.Opaque)
			ps.results = append(ps.results, probeResult{body: p.body, sent: p.sent, answered: now, code: cmd.Code, remark: cmd.Remark})
		}
		ps.mu.Unlock()
	}
}

// stop ends the stream and waits (bounded by the probe timeout) for the
// probes in flight.
func (ps *probeStream) stop() {
	ps.once.Do(func() {
		close(ps.quit)
		<-ps.launched
		if ps.opts.oneConn {
			waitFor(ps.opts.timeout, func() bool { ps.mu.Lock(); defer ps.mu.Unlock(); return len(ps.pending) == 0 })
			ps.mu.Lock()
			for _, c := range ps.conns {
				_ = c.Close() // its reader records what is still pending
			}
			ps.mu.Unlock()
			ps.readers.Wait()
			ps.mu.Lock()
			for op, p := range ps.pending { // a connection that failed before the probe was registered on it
				delete(ps.pending, op)
				ps.results = append(ps.results, probeResult{body: p.body, sent: p.sent, answered: time.Now(), code: -1,
					err: fmt.Errorf("no answer from %s", ps.addr)})
			}
			ps.mu.Unlock()
			return
		}
		done := make(chan struct{})
		go func() { ps.inflight.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(ps.opts.timeout + 7*time.Second): // each probe gives up after its timeout (+ its dial)
		}
	})
}

func (ps *probeStream) count() int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return len(ps.results)
}

// summary counts the answers by kind, with the last send of each kind; taken
// is the number answered SUCCESS.
func (ps *probeStream) summary() (text string, taken int) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	type kind struct {
		n        int
		last     time.Time
		lastBody string
	}
	kinds := map[string]*kind{}
	for _, r := range ps.results {
		k := fmt.Sprintf("code %d %q", r.code, r.remark)
		if r.err != nil {
			k = cmErrKind(r.err)
		}
		if r.code == 0 {
			taken++
		}
		if kinds[k] == nil {
			kinds[k] = &kind{}
		}
		kinds[k].n++
		if r.sent.After(kinds[k].last) {
			kinds[k].last, kinds[k].lastBody = r.sent, r.body
		}
	}
	var parts []string
	for k, v := range kinds {
		parts = append(parts, fmt.Sprintf("%s: %d (last sent %s, %s)", k, v.n, v.last.Format("15:04:05.000"), v.lastBody))
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d sent; %s", len(ps.results), strings.Join(parts, "; ")), taken
}

// refusals splits the answers: refused with code want, and every other
// outcome (SUCCESS, another code, no answer), described with when it was
// sent and answered relative to ref (e.g. the SIGSTOP).
func (ps *probeStream) refusals(want int, ref time.Time) (refused int, firstRefusal time.Time, others []string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, r := range ps.results {
		if r.err == nil && r.code == want {
			refused++
			if firstRefusal.IsZero() || r.answered.Before(firstRefusal) {
				firstRefusal = r.answered
			}
			continue
		}
		what := fmt.Sprintf("code %d %q", r.code, r.remark)
		if r.err != nil {
			what = "no answer: " + r.err.Error()
		}
		others = append(others, fmt.Sprintf("%s (sent +%v, answered +%v): %s", r.body,
			r.sent.Sub(ref).Round(time.Millisecond), r.answered.Sub(ref).Round(time.Millisecond), what))
	}
	sort.Strings(others)
	return refused, firstRefusal, others
}

// head: the first n of list, and a count of all when there are more.
func head(list []string, n int) []string {
	if len(list) > n {
		return append(append([]string{}, list[:n]...), fmt.Sprintf("... (%d in all)", len(list)))
	}
	return list
}

// cmLostLines lists (at most 20 of) the lost acknowledged messages with where their
// SendOK put them, one a line, for a failure report.
func cmLostLines(lost []string, acked map[string]cmAck) string {
	var lines []string
	for i, body := range lost {
		if i == 20 {
			lines = append(lines, fmt.Sprintf("  ... (%d lost in all)", len(lost)))
			break
		}
		a := acked[body]
		lines = append(lines, fmt.Sprintf("  %s: queue %d offset %d msgId %s, sent %s, SendOK %s",
			body, a.queue, a.offset, a.msgID, a.start.Format("15:04:05.000"), a.end.Format("15:04:05.000")))
	}
	return strings.Join(lines, "\n")
}
