package interop

// Test harness: starts the ferromq binary (name server + broker in one
// process), captures its output, and provides small helpers around the
// official Go client (github.com/apache/rocketmq-client-go/v2 v2.1.2).
//
// Everything connects to 127.0.0.1 only. Every wait is bounded.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"
)

const (
	readyMarker  = "FerroMQ is ready"
	readyTimeout = 20 * time.Second
	stopTimeout  = 15 * time.Second
)

// ---------------------------------------------------------------------------
// TestMain: quiet client logging, panic capture.
// ---------------------------------------------------------------------------

func TestMain(m *testing.M) {
	level := os.Getenv("FERROMQ_GO_LOG_LEVEL") // debug|info|warn|error
	if level == "" {
		level = "warn"
	}
	clientLog.level = levelRank(level)
	rlog.SetLogger(clientLog)
	primitive.PanicHandler = func(v interface{}) {
		panics.record(fmt.Sprintf("%v\n%s", v, debug.Stack()))
	}
	os.Exit(m.Run())
}

// ---------------------------------------------------------------------------
// Client-side log capture (rlog replacement).
// ---------------------------------------------------------------------------

func levelRank(s string) int {
	switch strings.ToLower(s) {
	case "debug":
		return 0
	case "info":
		return 1
	case "warn", "warning":
		return 2
	case "error":
		return 3
	default:
		return 4
	}
}

type capturingLogger struct {
	mu    sync.Mutex
	level int
	// Buffers of the tests running now (one per test; several while tests
	// that call t.Parallel() run together). Empty = discard.
	bufs map[*bytes.Buffer]struct{}
}

var clientLog = &capturingLogger{level: 2}

func (l *capturingLogger) log(rank int, lvl, msg string, fields map[string]interface{}) {
	if rank < l.level {
		return
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %-5s %s", time.Now().Format("15:04:05.000"), lvl, msg)
	for _, k := range keys {
		fmt.Fprintf(&sb, " %s=%v", k, fields[k])
	}
	sb.WriteByte('\n')
	line := sb.String()
	l.mu.Lock()
	defer l.mu.Unlock()
	for buf := range l.bufs {
		if buf.Len() < 4<<20 {
			buf.WriteString(line)
		}
	}
}

func (l *capturingLogger) Debug(msg string, f map[string]interface{})   { l.log(0, "DEBUG", msg, f) }
func (l *capturingLogger) Info(msg string, f map[string]interface{})    { l.log(1, "INFO", msg, f) }
func (l *capturingLogger) Warning(msg string, f map[string]interface{}) { l.log(2, "WARN", msg, f) }
func (l *capturingLogger) Error(msg string, f map[string]interface{})   { l.log(3, "ERROR", msg, f) }
func (l *capturingLogger) Fatal(msg string, f map[string]interface{})   { l.log(4, "FATAL", msg, f) }
func (l *capturingLogger) Level(level string)                           {}
func (l *capturingLogger) OutputPath(path string) error                 { return nil }

// captureClientLog routes client (rlog) output into a per-test buffer that is
// printed only when the test fails. rlog is process-global, so while tests
// that call t.Parallel() run together each of their buffers receives every
// line: a failing parallel test's log also holds its neighbours' lines (group,
// topic and instance names, which embed the test name, tell them apart).
// Likewise a recovered client panic is reported by every test running then.
//
// The returned func gives the lines captured so far (for tests that report
// what the client did).
func captureClientLog(t *testing.T) func() string {
	t.Helper()
	buf := &bytes.Buffer{}
	clientLog.mu.Lock()
	if clientLog.bufs == nil {
		clientLog.bufs = map[*bytes.Buffer]struct{}{}
	}
	clientLog.bufs[buf] = struct{}{}
	clientLog.mu.Unlock()
	panicMark := panics.count()
	t.Cleanup(func() {
		if p := panics.since(panicMark); len(p) > 0 {
			t.Errorf("Go client panicked (recovered by primitive.PanicHandler):\n%s", strings.Join(p, "\n---\n"))
		}
		clientLog.mu.Lock()
		out := buf.String()
		delete(clientLog.bufs, buf)
		clientLog.mu.Unlock()
		if t.Failed() && out != "" {
			t.Logf("---- Go client log (rlog >= level) ----\n%s---- end client log ----", tail(out, 64<<10))
		}
	})
	return func() string {
		clientLog.mu.Lock()
		defer clientLog.mu.Unlock()
		return buf.String()
	}
}

type panicRecorder struct {
	mu   sync.Mutex
	list []string
}

var panics = &panicRecorder{}

func (p *panicRecorder) record(s string) {
	p.mu.Lock()
	p.list = append(p.list, s)
	p.mu.Unlock()
}
func (p *panicRecorder) count() int { p.mu.Lock(); defer p.mu.Unlock(); return len(p.list) }
func (p *panicRecorder) since(n int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.list[n:]...)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "...(truncated)...\n" + s[len(s)-n:]
}

// ---------------------------------------------------------------------------
// Broker process management.
// ---------------------------------------------------------------------------

// ferromqBin returns the broker binary: $FERROMQ_BIN, else ../../target/debug/ferromq
// relative to this package directory (go test runs in the package directory).
func ferromqBin(t *testing.T) string {
	t.Helper()
	p := os.Getenv("FERROMQ_BIN")
	if p == "" {
		p = filepath.Join("..", "..", "target", "debug", "ferromq")
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatalf("resolve broker binary %q: %v", p, err)
	}
	if st, err := os.Stat(abs); err != nil || st.IsDir() {
		t.Fatalf("ferromq binary not found at %s (set FERROMQ_BIN or build it with cargo build): %v", abs, err)
	}
	return abs
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 8<<20 { // keep memory bounded
		return len(p), nil
	}
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// Broker is one running `ferromq standalone` process.
type Broker struct {
	t          *testing.T
	Name       string // label used in logs (e.g. "run1")
	DataDir    string
	NamesrvAdr string // 127.0.0.1:port
	BrokerAddr string // 127.0.0.1:port
	cmd        *exec.Cmd
	out        *syncBuffer
	exited     chan struct{}
	exitErr    error
	stopOnce   sync.Once
}

type brokerOpts struct {
	dataDir     string // "" = t.TempDir()
	namesrvAddr string // "" = free port
	brokerAddr  string // "" = free port
	conf        string // broker.conf content; "" = no -c
	name        string
}

// freePort returns a currently free TCP port on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("allocate free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func portFree(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// startBroker launches ferromq and waits (bounded) for the ready line. The
// process is stopped with SIGTERM (SIGKILL fallback) in t.Cleanup, and its
// output is printed if the test failed.
func startBroker(t *testing.T, o brokerOpts) *Broker {
	t.Helper()
	bin := ferromqBin(t)
	if o.dataDir == "" {
		o.dataDir = t.TempDir()
	}
	if o.namesrvAddr == "" {
		o.namesrvAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	}
	if o.brokerAddr == "" {
		for i := 0; i < 20; i++ {
			o.brokerAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
			if o.brokerAddr != o.namesrvAddr {
				break
			}
		}
	}
	if o.name == "" {
		o.name = "broker"
	}
	// Tests run many brokers: none of them needs the dashboard (and its port 8080).
	args := []string{"standalone", "--data-dir", o.dataDir,
		"--namesrv-listen", o.namesrvAddr, "--broker-listen", o.brokerAddr, "--no-dashboard"}
	if o.conf != "" {
		confPath := filepath.Join(t.TempDir(), "broker.conf")
		if err := os.WriteFile(confPath, []byte(o.conf), 0o644); err != nil {
			t.Fatalf("write broker.conf: %v", err)
		}
		args = append(args, "-c", confPath)
	}

	b := &Broker{t: t, Name: o.name, DataDir: o.dataDir, NamesrvAdr: o.namesrvAddr,
		BrokerAddr: o.brokerAddr, out: &syncBuffer{}, exited: make(chan struct{})}
	cmd := exec.Command(bin, args...)
	cmd.Stdin = nil
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(b.out, "$ %s %s\n", bin, strings.Join(args, " "))
	if o.conf != "" {
		fmt.Fprintf(b.out, "broker.conf:\n%s\n", o.conf)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ferromq: %v", err)
	}
	b.cmd = cmd

	ready := make(chan struct{})
	var readyOnce sync.Once
	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() { // stdout: look for the ready line
		defer pipes.Done()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintf(b.out, "%s O| %s\n", time.Now().Format("15:04:05.000"), line)
			if strings.Contains(line, readyMarker) {
				readyOnce.Do(func() { close(ready) })
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		defer pipes.Done()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(b.out, "%s E| %s\n", time.Now().Format("15:04:05.000"), sc.Text())
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() {
		pipes.Wait() // Wait must not be called before the pipes are drained
		b.exitErr = cmd.Wait()
		fmt.Fprintf(b.out, "%s -- process exited: %v\n", time.Now().Format("15:04:05.000"), describeExit(b.exitErr))
		close(b.exited)
	}()

	t.Cleanup(func() {
		b.Stop()
		if t.Failed() {
			t.Logf("---- ferromq %s output (data dir %s, namesrv %s, broker %s) ----\n%s---- end ferromq %s output ----",
				b.Name, b.DataDir, b.NamesrvAdr, b.BrokerAddr, tail(b.out.String(), 96<<10), b.Name)
		}
	})

	select {
	case <-ready:
		t.Logf("ferromq %s ready in %v (namesrv %s, broker %s)", b.Name, time.Since(start).Round(time.Millisecond), b.NamesrvAdr, b.BrokerAddr)
	case <-b.exited:
		t.Fatalf("ferromq %s exited before printing %q: %v", b.Name, readyMarker, describeExit(b.exitErr))
	case <-time.After(readyTimeout):
		t.Fatalf("ferromq %s did not print %q within %v", b.Name, readyMarker, readyTimeout)
	}
	return b
}

func describeExit(err error) string {
	if err == nil {
		return "exit status 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by signal " + ws.Signal().String()
		}
	}
	return err.Error()
}

// Stop sends SIGTERM and waits up to stopTimeout, then SIGKILLs. It returns
// nil only if the process exited on its own with status 0 after SIGTERM.
func (b *Broker) Stop() error {
	var result error
	b.stopOnce.Do(func() {
		select {
		case <-b.exited:
			result = fmt.Errorf("ferromq %s had already exited: %s", b.Name, describeExit(b.exitErr))
			return
		default:
		}
		fmt.Fprintf(b.out, "%s -- harness: sending SIGTERM\n", time.Now().Format("15:04:05.000"))
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.exited:
			if b.exitErr != nil {
				result = fmt.Errorf("ferromq %s exited uncleanly after SIGTERM: %s", b.Name, describeExit(b.exitErr))
			}
		case <-time.After(stopTimeout):
			fmt.Fprintf(b.out, "%s -- harness: no exit %v after SIGTERM, sending SIGKILL\n", time.Now().Format("15:04:05.000"), stopTimeout)
			_ = b.cmd.Process.Kill()
			<-b.exited
			result = fmt.Errorf("ferromq %s did not exit within %v of SIGTERM (SIGKILLed)", b.Name, stopTimeout)
		}
	})
	return result
}

// Kill simulates a crash (SIGKILL) and waits for the process to disappear.
func (b *Broker) Kill() {
	b.stopOnce.Do(func() {
		fmt.Fprintf(b.out, "%s -- harness: sending SIGKILL\n", time.Now().Format("15:04:05.000"))
		_ = b.cmd.Process.Kill()
		select {
		case <-b.exited:
		case <-time.After(stopTimeout):
			b.t.Errorf("ferromq %s still running %v after SIGKILL", b.Name, stopTimeout)
		}
	})
}

// Output returns everything the broker printed so far.
func (b *Broker) Output() string { return b.out.String() }

// ---------------------------------------------------------------------------
// Names.
// ---------------------------------------------------------------------------

func nonce() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// uniq builds a topic/group/instance name that is unique per call and only
// uses characters valid in RocketMQ topic and group names.
func uniq(t *testing.T, kind string) string {
	name := strings.NewReplacer("/", "_", " ", "_", "#", "_").Replace(t.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	return fmt.Sprintf("%s_%s_%s", kind, name, nonce())
}

// ---------------------------------------------------------------------------
// Producer / consumer helpers.
// ---------------------------------------------------------------------------

func newProducer(t *testing.T, nsAddr string, extra ...producer.Option) rocketmq.Producer {
	t.Helper()
	opts := []producer.Option{
		producer.WithNameServer([]string{nsAddr}),
		producer.WithGroupName(uniq(t, "PG")),
		producer.WithInstanceName(uniq(t, "pinst")),
	}
	opts = append(opts, extra...)
	p, err := rocketmq.NewProducer(opts...)
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	if err := p.Start(); err != nil {
		t.Fatalf("producer Start: %v", err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { _ = p.Shutdown() }) })
	return p
}

// sendSyncN sends bodies one by one with SendSync and checks each result.
func sendSyncN(t *testing.T, p rocketmq.Producer, topic string, bodies []string) []*primitive.SendResult {
	t.Helper()
	res := make([]*primitive.SendResult, 0, len(bodies))
	for i, body := range bodies {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		r, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte(body)))
		cancel()
		if err != nil {
			t.Fatalf("SendSync #%d (%q) to topic %s failed: %v", i, body, topic, err)
		}
		if r.Status != primitive.SendOK {
			t.Fatalf("SendSync #%d (%q): status %d, want SendOK(0); result %s", i, body, r.Status, r.String())
		}
		res = append(res, r)
	}
	return res
}

func bodiesN(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%04d", prefix, i)
	}
	return out
}

// collector records consumed messages (thread-safe).
type collector struct {
	mu     sync.Mutex
	counts map[string]int
	first  map[string]*primitive.MessageExt
	at     map[string]time.Time // first receive time per body
	total  int
	ignore func(body string) bool
}

func newCollector() *collector {
	return &collector{counts: map[string]int{}, first: map[string]*primitive.MessageExt{}, at: map[string]time.Time{}}
}

func (c *collector) handle(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range msgs {
		body := string(m.Body)
		if c.ignore != nil && c.ignore(body) {
			continue
		}
		c.total++
		c.counts[body]++
		if _, ok := c.first[body]; !ok {
			c.first[body] = m
			c.at[body] = now
		}
	}
	return consumer.ConsumeSuccess, nil
}

func (c *collector) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}

func (c *collector) firstMsg(body string) *primitive.MessageExt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.first[body]
}

func (c *collector) receivedAt(body string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.at[body]
	return at, ok
}

func (c *collector) has(body string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[body] > 0
}

// waitFor polls until every body in want has been received or timeout.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *collector) waitAll(want []string, timeout time.Duration) bool {
	return waitFor(timeout, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, w := range want {
			if c.counts[w] == 0 {
				return false
			}
		}
		return true
	})
}

type consumerOpts struct {
	group    string // "" = unique
	instance string // "" = unique
	from     consumer.ConsumeFromWhere
	extra    []consumer.Option
}

// handlerFunc is a push consumer's message callback.
type handlerFunc = func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error)

// startPushConsumer creates, subscribes (topic, all tags) and starts a
// clustering push consumer with a unique instance name. Shutdown runs in
// t.Cleanup (and may be called earlier through the returned func).
func startPushConsumer(t *testing.T, nsAddr, topic string, c *collector, o consumerOpts) (rocketmq.PushConsumer, func()) {
	t.Helper()
	return startConsumer(t, nsAddr, topic, consumer.MessageSelector{}, c.handle, o)
}

// startConsumer is startPushConsumer with any selector and callback; a
// failure to start is fatal.
func startConsumer(t *testing.T, nsAddr, topic string, sel consumer.MessageSelector, f handlerFunc, o consumerOpts) (rocketmq.PushConsumer, func()) {
	t.Helper()
	pc, shutdown, err := tryStartConsumer(t, nsAddr, topic, sel, f, o)
	if err != nil {
		t.Fatal(err)
	}
	return pc, shutdown
}

// tryStartConsumer is startConsumer returning the error instead.
func tryStartConsumer(t *testing.T, nsAddr, topic string, sel consumer.MessageSelector, f handlerFunc, o consumerOpts) (rocketmq.PushConsumer, func(), error) {
	t.Helper()
	if o.group == "" {
		o.group = uniq(t, "CG")
	}
	// Start() fails when the name server has no route for the topic yet. A
	// broker registers an auto-created topic with the name server shortly
	// after the first send (asynchronously, like Apache RocketMQ), so retry
	// that specific error for a bounded time.
	const routeWait = 10 * time.Second
	begin := time.Now()
	var pc rocketmq.PushConsumer
	for attempt := 1; ; attempt++ {
		instance := o.instance
		if instance == "" {
			instance = uniq(t, "cinst")
		}
		opts := []consumer.Option{
			consumer.WithNameServer([]string{nsAddr}),
			consumer.WithGroupName(o.group),
			consumer.WithInstance(instance),
			consumer.WithConsumeFromWhere(o.from),
			consumer.WithConsumerModel(consumer.Clustering),
		}
		opts = append(opts, o.extra...)
		var err error
		pc, err = rocketmq.NewPushConsumer(opts...)
		if err != nil {
			return nil, nil, fmt.Errorf("NewPushConsumer(group %s): %v", o.group, err)
		}
		if err := pc.Subscribe(topic, sel, f); err != nil {
			return nil, nil, fmt.Errorf("Subscribe(%s, %+v): %v", topic, sel, err)
		}
		err = pc.Start()
		if err == nil {
			if attempt > 1 {
				t.Logf("push consumer started after %d attempts (%v): the topic route appeared late on the name server",
					attempt, time.Since(begin).Round(time.Millisecond))
			}
			break
		}
		_ = pc.Shutdown()
		if !strings.Contains(err.Error(), "route info not found") || time.Since(begin) > routeWait {
			return nil, nil, fmt.Errorf("push consumer Start (group %s, topic %s, attempt %d after %v): %v",
				o.group, topic, attempt, time.Since(begin).Round(time.Millisecond), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var once sync.Once
	shutdown := func() { once.Do(func() { _ = pc.Shutdown() }) }
	t.Cleanup(shutdown)
	return pc, shutdown, nil
}

// ---------------------------------------------------------------------------
// Set comparison.
// ---------------------------------------------------------------------------

type setDiff struct {
	missing    []string
	unexpected []string
	dupBodies  int // bodies received more than once
	dupExtra   int // total extra deliveries
}

func compare(want []string, got map[string]int) setDiff {
	var d setDiff
	wantSet := make(map[string]bool, len(want))
	for _, w := range want {
		wantSet[w] = true
		if got[w] == 0 {
			d.missing = append(d.missing, w)
		}
	}
	for body, n := range got {
		if !wantSet[body] {
			d.unexpected = append(d.unexpected, body)
		}
		if n > 1 {
			d.dupBodies++
			d.dupExtra += n - 1
		}
	}
	sort.Strings(d.missing)
	sort.Strings(d.unexpected)
	return d
}

func abbrev(list []string) string {
	if len(list) <= 12 {
		return fmt.Sprintf("%v", list)
	}
	return fmt.Sprintf("%v ... (%d total)", list[:12], len(list))
}

func (d setDiff) String() string {
	return fmt.Sprintf("missing %d %s; unexpected %d %s; duplicated bodies %d (extra deliveries %d)",
		len(d.missing), abbrev(d.missing), len(d.unexpected), abbrev(d.unexpected), d.dupBodies, d.dupExtra)
}

// expectExactly asserts that got contains exactly want, each once.
func expectExactly(t *testing.T, what string, want []string, got map[string]int) {
	t.Helper()
	d := compare(want, got)
	if len(d.missing) > 0 || len(d.unexpected) > 0 || d.dupExtra > 0 {
		t.Errorf("%s: consumed set != sent set (%d sent, %d distinct received): %s", what, len(want), len(got), d)
	}
}
