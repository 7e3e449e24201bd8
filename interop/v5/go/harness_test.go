package v5interop

// Test harness: one target per test process (TestMain), the suite's topics and groups created
// once, and small helpers around the official v5 Go client.
//
// TARGET=ferromq (default): `$FERROMQ_BIN standalone --grpc-listen ...` on free 127.0.0.1 ports
// (FERROMQ_BIN defaults to ../../../target/debug/ferromq), admin is `$FERROMQ_BIN admin ...`.
// TARGET=apache: Apache RocketMQ 5.5.0 through ../apache-local.sh (or an instance it already
// started: V5_APACHE_STATE=DIR), admin is DIR/mqadmin (DIR/mqadmin-batch when there is one).
//
// Everything connects to 127.0.0.1 only. Every wait is bounded.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
)

const (
	ferromqReadyTimeout = 30 * time.Second
	adminTimeout        = 90 * time.Second
	// invisible is the shortest invisible duration Apache's proxy accepts on receive
	// (minInvisibleTimeMillsForRecv, 10 s).
	invisible = 10 * time.Second
	// await is the SimpleConsumer's awaitDuration. The Go client sends no long-polling timeout:
	// Apache's proxy polls for the call's remaining time less half the request timeout, at least
	// grpcClientConsumerMinLongPollingTimeoutMillis (5 s), and answers ILLEGAL_POLLING_TIME when
	// the call has less than that left. The call has awaitDuration + 3 s (request timeout), so
	// awaitDuration must exceed ~2 s; 5 s is the client's own example.
	await = 5 * time.Second
)

// apacheBrokerExtra: broker.conf lines for an Apache that this harness starts. Apache 5 writes
// the commit/rollback op records of transactions in batches every transactionOpBatchInterval (3 s
// by default). A check round that comes before a check-back's commit has its op record asks the
// producer again, and the message is then delivered once per COMMIT. apache-local.sh checks every
// 2 s. With 200 ms the op record is in place long before the next round (NOTES-java-go.md).
const apacheBrokerExtra = "transactionOpBatchInterval=200"

// Target is the server under test.
type Target struct {
	Kind     string // "ferromq" or "apache"
	GRPC     string // 127.0.0.1:port: the clients' endpoint
	Namesrv  string // 127.0.0.1:port
	admin    []string
	batch    string // Apache's mqadmin-batch, "" if none
	stop     func()
	out      *syncBuffer
	logsHint string
}

var target *Target

// The run's suffix for topic and group names.
var run = strconv.FormatInt(time.Now().UnixMilli()%2_000_000_000, 36)

func name(base string) string { return "v5g-" + base + "-" + run }

func TestMain(m *testing.M) {
	// The tests mostly wait (invisible durations, check-back, timers): run them all side by side
	// unless -parallel was given (go test's default is GOMAXPROCS, 2 here).
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		flag.Set("test.parallel", "8")
	}
	logDir, err := os.MkdirTemp("", "v5-go-client-logs-")
	if err == nil {
		os.Setenv("rocketmq.client.logRoot", logDir)
		os.Setenv("rocketmq.client.logLevel", envOr("V5_GO_LOG_LEVEL", "warn"))
		rmq.ResetLogger()
	}
	code := func() int {
		start := time.Now()
		t, err := startTarget()
		if err != nil {
			fmt.Fprintf(os.Stderr, "starting the target: %v\n", err)
			return 1
		}
		target = t
		defer func() {
			start := time.Now()
			t.stop()
			fmt.Printf("[harness] target stopped in %.1f s\n", time.Since(start).Seconds())
		}()
		fmt.Printf("[harness] target %s: gRPC %s, name server %s (%.1f s)\n", t.Kind, t.GRPC, t.Namesrv,
			time.Since(start).Seconds())
		start = time.Now()
		if err := createResources(t); err != nil {
			fmt.Fprintf(os.Stderr, "creating topics and groups: %v\n", err)
			return 1
		}
		fmt.Printf("[harness] %d topics and groups created in %.1f s\n", len(resources()), time.Since(start).Seconds())
		start = time.Now()
		code := m.Run()
		fmt.Printf("[harness] tests ran for %.1f s\n", time.Since(start).Seconds())
		return code
	}()
	if logDir != "" {
		fmt.Printf("[harness] client logs: %s\n", logDir)
	}
	os.Exit(code)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func startTarget() (*Target, error) {
	switch strings.ToLower(envOr("TARGET", "ferromq")) {
	case "ferromq":
		return startFerroMQ()
	case "apache":
		return startApache()
	default:
		return nil, fmt.Errorf("TARGET must be ferromq or apache, not %q", os.Getenv("TARGET"))
	}
}

// ---------------------------------------------------------------------------
// Apache
// ---------------------------------------------------------------------------

func startApache() (*Target, error) {
	script, err := filepath.Abs(filepath.Join("..", "apache-local.sh"))
	if err != nil {
		return nil, err
	}
	state := os.Getenv("V5_APACHE_STATE")
	stop := func() {}
	if state == "" {
		state, err = os.MkdirTemp("", "v5-apache-go-")
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", script, "start", state)
		extra := apacheBrokerExtra
		if e := os.Getenv("APACHE_BROKER_EXTRA"); e != "" {
			extra = e + `\n` + extra
		}
		cmd.Env = append(os.Environ(), "APACHE_BROKER_EXTRA="+extra)
		fmt.Printf("[harness] %s\n", strings.Join(cmd.Args, " "))
		out, err := cmd.CombinedOutput()
		stopCmd := func() {
			c := exec.Command("bash", script, "stop", state)
			c.Stdout, c.Stderr = io.Discard, io.Discard
			done := make(chan struct{})
			go func() { c.Run(); close(done) }()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
			}
			os.RemoveAll(state)
		}
		if err != nil {
			stopCmd()
			return nil, fmt.Errorf("apache-local.sh start: %v\n%s", err, out)
		}
		stop = stopCmd
	}
	env, err := readEnvFile(filepath.Join(state, "env"))
	if err != nil {
		stop()
		return nil, err
	}
	if env["GRPC"] == "" || env["NAMESRV"] == "" {
		stop()
		return nil, fmt.Errorf("%s/env lacks GRPC or NAMESRV: %v", state, env)
	}
	t := &Target{Kind: "apache", GRPC: env["GRPC"], Namesrv: env["NAMESRV"],
		admin: []string{filepath.Join(state, "mqadmin")}, stop: stop, out: &syncBuffer{},
		logsHint: "Apache logs: " + envOrMap(env, "LOGS", filepath.Join(state, "logs"))}
	if st, err := os.Stat(filepath.Join(state, "mqadmin-batch")); err == nil && !st.IsDir() {
		t.batch = filepath.Join(state, "mqadmin-batch")
	}
	return t, nil
}

func envOrMap(m map[string]string, k, def string) string {
	if v := m[k]; v != "" {
		return v
	}
	return def
}

func readEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		m[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	return m, nil
}

// ---------------------------------------------------------------------------
// FerroMQ
// ---------------------------------------------------------------------------

// ferromqBin returns $FERROMQ_BIN, else ../../../target/debug/ferromq (go test runs in the
// package directory, interop/v5/go).
func ferromqBin() (string, error) {
	p := envOr("FERROMQ_BIN", filepath.Join("..", "..", "..", "target", "debug", "ferromq"))
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if st, err := os.Stat(abs); err != nil || st.IsDir() {
		return "", fmt.Errorf("ferromq binary not found at %s (set FERROMQ_BIN, or TARGET=apache): %v", abs, err)
	}
	return abs, nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 8<<20 {
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func startFerroMQ() (*Target, error) {
	bin, err := ferromqBin()
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ferromq-v5-go-")
	if err != nil {
		return nil, err
	}
	grpc := fmt.Sprintf("127.0.0.1:%d", ports[2])
	args := []string{"standalone", "--data-dir", dir,
		"--namesrv-listen", fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"--broker-listen", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--grpc-listen", grpc, "--no-dashboard"}
	out := &syncBuffer{}
	fmt.Fprintf(out, "$ %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		os.RemoveAll(dir)
	}
	deadline := time.Now().Add(ferromqReadyTimeout)
	for {
		select {
		case <-exited:
			stop()
			return nil, fmt.Errorf("ferromq exited before its gRPC port accepted:\n%s", out)
		default:
		}
		if c, err := net.DialTimeout("tcp", grpc, 500*time.Millisecond); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("ferromq's gRPC port %s did not accept within %v:\n%s", grpc, ferromqReadyTimeout, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return &Target{Kind: "ferromq", GRPC: grpc, Namesrv: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		admin: []string{bin, "admin"}, stop: stop, out: out}, nil
}

// diagnostics: FerroMQ's last output lines, or where Apache's logs are.
func (t *Target) diagnostics() string {
	if t.logsHint != "" {
		return t.logsHint
	}
	lines := strings.Split(t.out.String(), "\n")
	if len(lines) > 400 {
		lines = lines[len(lines)-400:]
	}
	return "last FerroMQ output lines:\n" + strings.Join(lines, "\n")
}

// dumpOnFailure prints the target's diagnostics when the test failed.
func dumpOnFailure(t *testing.T) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("===== %s failed; %s\n===== end", t.Name(), target.diagnostics())
		}
	})
}

// ---------------------------------------------------------------------------
// Topics and groups
// ---------------------------------------------------------------------------

var (
	topicNormal    = name("normal")
	topicFifo      = name("fifo")
	topicFifoPush  = name("fifo-push")
	topicDelay     = name("delay")
	topicRecall    = name("recall")
	topicTx        = name("tx")
	topicInvisible = name("invisible")
	topicDLQ       = name("dlq")
	topicPush      = name("push")
	topicTLS       = name("tls")

	// Plain groups (retryMaxTimes 16, Apache's default). Every group is created beforehand:
	// Apache's proxy answers a consumer's settings with INVALID_ARGUMENT "group not found" for a
	// group that does not exist, even with the broker's autoCreateSubscriptionGroup=true.
	groupNormal    = name("g-normal")
	groupDelay     = name("g-delay")
	groupRecall    = name("g-recall")
	groupTx        = name("g-tx")
	groupPush      = name("g-push")
	groupTLS       = name("g-tls")
	groupDLQReader = name("g-dlq-reader")
	// Orderly (FIFO) groups, retryMaxTimes 2.
	groupFifo     = name("g-fifo")
	groupFifoPush = name("g-fifo-push")
	// Plain groups with retryMaxTimes 2: at most 3 delivery attempts, then the DLQ.
	groupInvisible = name("g-invisible")
	groupDLQ       = name("g-dlq")
)

const retryMaxTimes = 2

func resources() [][]string {
	ns := target.Namesrv
	topic := func(t, typ string) []string {
		return []string{"updateTopic", "-n", ns, "-c", "DefaultCluster", "-t", t, "-a", "+message.type=" + typ}
	}
	group := func(g string, orderly bool, retries int) []string {
		return []string{"updateSubGroup", "-n", ns, "-c", "DefaultCluster", "-g", g,
			"-o", strconv.FormatBool(orderly), "-r", strconv.Itoa(retries)}
	}
	cmds := [][]string{
		topic(topicNormal, "NORMAL"), topic(topicFifo, "FIFO"), topic(topicFifoPush, "FIFO"),
		topic(topicDelay, "DELAY"), topic(topicRecall, "DELAY"), topic(topicTx, "TRANSACTION"), topic(topicInvisible, "NORMAL"),
		topic(topicDLQ, "NORMAL"), topic(topicPush, "NORMAL"), topic(topicTLS, "NORMAL"),
	}
	for _, g := range []string{groupNormal, groupDelay, groupRecall, groupTx, groupPush, groupTLS, groupDLQReader} {
		cmds = append(cmds, group(g, false, 16))
	}
	cmds = append(cmds, group(groupFifo, true, retryMaxTimes), group(groupFifoPush, true, retryMaxTimes),
		group(groupInvisible, false, retryMaxTimes), group(groupDLQ, false, retryMaxTimes))
	return cmds
}

// createResources runs the admin commands: Apache's through mqadmin-batch (3 JVMs, a third of
// the commands each), else each command as its own process, 10 at a time.
func createResources(t *Target) error {
	cmds := resources()
	var jobs []func() error
	if t.batch != "" {
		for k := 0; k < 3; k++ {
			var part [][]string
			for i := k; i < len(cmds); i += 3 {
				part = append(part, cmds[i])
			}
			if len(part) > 0 {
				jobs = append(jobs, func() error { return t.runBatch(part) })
			}
		}
	} else {
		for _, c := range cmds {
			jobs = append(jobs, func() error { return t.runAdmin(c) })
		}
	}
	sem := make(chan struct{}, 10)
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = j()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (t *Target) runAdmin(args []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, t.admin[0], append(append([]string{}, t.admin[1:]...), args...)...)
	if t.Kind == "apache" {
		cmd.Env = append(os.Environ(), "JAVA_TOOL_OPTIONS=-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
	}
	out, err := cmd.CombinedOutput()
	// mqadmin exits 0 on some failures: its success line names the action.
	if err != nil || (t.Kind == "apache" && !bytes.Contains(out, []byte("success"))) {
		return fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return nil
}

func (t *Target) runBatch(cmds [][]string) error {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	var in strings.Builder
	for _, c := range cmds {
		in.WriteString(strings.Join(c, " ") + "\n")
	}
	cmd := exec.CommandContext(ctx, t.batch)
	cmd.Env = append(os.Environ(), "JAVA_TOOL_OPTIONS=-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.CombinedOutput()
	// mqadmin prints one "create ... to <broker> success." line per command (one broker here).
	ok := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "create ") && strings.HasSuffix(l, "success.") {
			ok++
		}
	}
	if err != nil || ok != len(cmds) {
		return fmt.Errorf("mqadmin-batch: %d of %d commands succeeded (%v)\n%s", ok, len(cmds), err, out)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Client helpers
// ---------------------------------------------------------------------------

// config: the endpoint; no credentials (the client then sends no signature). Whether the
// connection uses TLS is the package-wide rmq.EnableSsl (default true, from the environment
// variable rocketmq.client.enableSsl), read when a client dials.
func config(group string) *rmq.Config {
	return &rmq.Config{Endpoint: target.GRPC, ConsumerGroup: group}
}

func newProducer(t *testing.T, checker *rmq.TransactionChecker, topics ...string) rmq.Producer {
	t.Helper()
	opts := []rmq.ProducerOption{rmq.WithTopics(topics...)}
	if checker != nil {
		opts = append(opts, rmq.WithTransactionChecker(checker))
	}
	p, err := rmq.NewProducer(config(""), opts...)
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	if err := p.Start(); err != nil {
		t.Fatalf("producer Start: %v", err)
	}
	t.Cleanup(func() { p.GracefulStop() })
	return p
}

func newSimpleConsumer(t *testing.T, group, topic string) rmq.SimpleConsumer {
	t.Helper()
	c, err := rmq.NewSimpleConsumer(config(group),
		rmq.WithSimpleAwaitDuration(await),
		rmq.WithSimpleSubscriptionExpressions(map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL}))
	if err != nil {
		t.Fatalf("NewSimpleConsumer: %v", err)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("simple consumer Start (group %s, topic %s): %v", group, topic, err)
	}
	t.Cleanup(func() { c.GracefulStop() })
	return c
}

func newPushConsumer(t *testing.T, group, topic string, listener func(*rmq.MessageView) rmq.ConsumerResult) rmq.PushConsumer {
	t.Helper()
	c, err := rmq.NewPushConsumer(config(group),
		rmq.WithPushAwaitDuration(5*time.Second),
		rmq.WithPushSubscriptionExpressions(map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL}),
		rmq.WithPushConsumptionThreadCount(4),
		rmq.WithPushMessageListener(&rmq.FuncMessageListener{Consume: listener}))
	if err != nil {
		t.Fatalf("NewPushConsumer: %v", err)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("push consumer Start (group %s, topic %s): %v", group, topic, err)
	}
	t.Cleanup(func() { c.GracefulStop() })
	return c
}

func newMessage(topic, body string) *rmq.Message {
	return &rmq.Message{Topic: topic, Body: []byte(body)}
}

func send(t *testing.T, p rmq.Producer, m *rmq.Message) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := p.Send(ctx, m)
	if err != nil {
		t.Fatalf("send %q: %v", m.Body, err)
	}
	if len(r) != 1 || r[0].MessageID == "" {
		t.Fatalf("send %q: receipts %+v", m.Body, r)
	}
	return r[0].MessageID
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func describe(m *rmq.MessageView) string {
	return fmt.Sprintf("{id=%s body=%s tag=%s keys=%v group=%s attempt=%d props=%v}", m.GetMessageId(),
		m.GetBody(), str(m.GetTag()), m.GetKeys(), str(m.GetMessageGroup()), m.GetDeliveryAttempt(), m.GetProperties())
}

type got struct {
	m  *rmq.MessageView
	at time.Time
}

func describeAll(gs []got) string {
	var parts []string
	for _, g := range gs {
		parts = append(parts, describe(g.m))
	}
	return "\n  " + strings.Join(parts, "\n  ")
}

func bodies(gs []got) []string {
	var out []string
	for _, g := range gs {
		out = append(out, string(g.m.GetBody()))
	}
	sort.Strings(out)
	return out
}

// isNotFound: the Go client reports an empty long poll as an error with code MESSAGE_NOT_FOUND.
func isNotFound(err error) bool {
	var st *rmq.ErrRpcStatus
	return errors.As(err, &st) && st.Code == int32(v2.Code_MESSAGE_NOT_FOUND)
}

// receiveUntil receives (batches of up to 16) until done holds for everything received so far,
// or the period ends; acks each message when ack.
func receiveUntil(t *testing.T, c rmq.SimpleConsumer, inv time.Duration, ack bool, within time.Duration,
	done func([]got) bool) []got {
	t.Helper()
	var gs []got
	deadline := time.Now().Add(within)
	for !done(gs) && time.Now().Before(deadline) {
		ms, err := c.Receive(context.Background(), 16, inv)
		if err != nil {
			if isNotFound(err) {
				continue
			}
			t.Logf("receive: %v", err)
			time.Sleep(200 * time.Millisecond)
			continue
		}
		now := time.Now()
		for _, m := range ms {
			gs = append(gs, got{m, now})
			if ack {
				if err := c.Ack(context.Background(), m); err != nil {
					t.Errorf("ack %s: %v", describe(m), err)
				}
			}
		}
	}
	return gs
}

func receiveFor(t *testing.T, c rmq.SimpleConsumer, inv time.Duration, ack bool, period time.Duration) []got {
	t.Helper()
	return receiveUntil(t, c, inv, ack, period, func([]got) bool { return false })
}
