//go:build linux

package interop

// Apache's official Java client (rocketmq-client 5.5.0) in
// TestControllerModePartition's lab, beside the Go client: the program
// io.ferromq.apachetools.PartitionClient (interop/apache-tools, test sources)
// runs as a child of the test process inside the lab namespace, so it is on
// the client's side of the partition (10.77.0.254) like the Go client. It
// sends j-0, j-1, ... with DefaultMQProducer.send (sync, two retries in a 3 s
// timeout, routes polled every second) and consumes the whole topic with a
// DefaultMQPushConsumer of its own group, and writes every send's outcome and
// every delivery to files in its directory, which the test reads.
//
// The class path comes from $FERROMQ_JAVA_PARTITION_CP (the compiled test
// classes of interop/apache-tools and its test class path, as scripts/test.sh
// builds them); java is $FERROMQ_JAVA, else java on PATH. Without the class
// path the test logs that the Java part is skipped and runs without it.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	javaPartitionCPEnv = "FERROMQ_JAVA_PARTITION_CP"
	javaPartitionClass = "io.ferromq.apachetools.PartitionClient"
	javaStartWait      = 90 * time.Second // JVM start, routes, the first SEND_OK
	javaStopWait       = 40 * time.Second // the producer stopping (a send lasts at most 3 s)
	javaExitWait       = 60 * time.Second // both clients shut down
	javaKeptLines      = 400              // other output lines kept for a failure report
)

type javaLabClient struct {
	t       *testing.T
	dir     string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	exited  chan struct{}
	exitErr error
	started time.Time

	mu    sync.Mutex
	other []string // output lines other than [java] progress (logback status, stack traces)
}

// javaSends is what PartitionClient's producer recorded in sends.tsv.
type javaSends struct {
	sent     int
	acked    map[string]cmAck
	okStarts []time.Time
	okEnds   []time.Time
	notAcked map[string]int
	samples  map[string]string
}

type javaDelivery struct {
	queue     int
	offset    int64
	host      string
	clOffset  int64
	delivered time.Time
}

// startJavaLabClient starts PartitionClient on topic, or returns nil (saying
// so) when $FERROMQ_JAVA_PARTITION_CP is unset. It is killed at the end of the
// test if it is still running.
func startJavaLabClient(t *testing.T, nsAddr, topic, parent string) *javaLabClient {
	t.Helper()
	cp := os.Getenv(javaPartitionCPEnv)
	if cp == "" {
		t.Logf("%s is not set: the Java client part is skipped (scripts/test.sh sets it; see interop/go/README.md)", javaPartitionCPEnv)
		return nil
	}
	java := os.Getenv("FERROMQ_JAVA")
	if java == "" {
		java = "java"
	}
	if _, err := exec.LookPath(java); err != nil {
		t.Fatalf("%s is set but there is no %s: %v", javaPartitionCPEnv, java, err)
	}
	dir := filepath.Join(parent, "java")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	j := &javaLabClient{t: t, dir: dir, exited: make(chan struct{}), started: time.Now()}
	maxSecs := int(partLabTimeout / time.Second)
	j.cmd = exec.Command(java, "-Xmx256m",
		"-Duser.home="+filepath.Join(dir, "home"), // the client's own logs: home/logs/rocketmqlogs
		"-Drocketmq.client.logLevel=WARN",
		"-Drocketmq.client.rebalance.waitInterval=2000",
		"-cp", cp, javaPartitionClass, nsAddr, topic, dir, strconv.Itoa(maxSecs))
	j.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var err error
	if j.stdin, err = j.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := j.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	j.cmd.Stderr = j.cmd.Stdout
	if err := j.cmd.Start(); err != nil {
		t.Fatalf("start the Java client %v: %v", j.cmd.Args, err)
	}
	t.Logf("started the Java client (pid %d): %s ... %s %s %s %s", j.cmd.Process.Pid, java, javaPartitionClass, nsAddr, topic, dir)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "[java]") {
				t.Logf("java| %s", line)
				continue
			}
			j.mu.Lock()
			j.other = append(j.other, line)
			if len(j.other) > javaKeptLines {
				j.other = j.other[len(j.other)-javaKeptLines:]
			}
			j.mu.Unlock()
		}
		j.exitErr = j.cmd.Wait()
		close(j.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-j.exited:
			return
		default:
		}
		_ = j.cmd.Process.Kill()
		select {
		case <-j.exited:
		case <-time.After(stopTimeout):
			t.Errorf("the Java client (pid %d) still running %v after SIGKILL", j.cmd.Process.Pid, stopTimeout)
		}
	})
	return j
}

// checkAlive fails the test if the program exited before it was told to.
func (j *javaLabClient) checkAlive(when string) {
	j.t.Helper()
	select {
	case <-j.exited:
		j.t.Fatalf("%s: the Java client exited on its own (%v); its other output:\n%s", when, j.exitErr, j.otherOutput())
	default:
	}
}

func (j *javaLabClient) otherOutput() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return strings.Join(j.other, "\n")
}

// sends reads sends.tsv (a line the program has not finished is left out).
func (j *javaLabClient) sends() *javaSends {
	j.t.Helper()
	s := &javaSends{acked: map[string]cmAck{}, notAcked: map[string]int{}, samples: map[string]string{}}
	for _, f := range j.lines("sends.tsv") {
		switch {
		case len(f) == 7 && f[0] == "OK":
			q, _ := strconv.Atoi(f[2])
			off, _ := strconv.ParseInt(f[3], 10, 64)
			start, end := millis(f[5]), millis(f[6])
			s.acked[f[1]] = cmAck{queue: q, offset: off, msgID: f[4], start: start, end: end}
			s.okStarts = append(s.okStarts, start)
			s.okEnds = append(s.okEnds, end)
		case len(f) >= 5 && f[0] == "ERR":
			s.notAcked[f[2]]++
			if _, ok := s.samples[f[2]]; !ok {
				text := ""
				if len(f) > 5 {
					text = f[5]
				}
				s.samples[f[2]] = fmt.Sprintf("%s (%s at %s)", text, f[1], millis(f[4]).Format("15:04:05.000"))
			}
		default:
			j.t.Errorf("the Java client's sends.tsv has a line of an unknown shape: %q", strings.Join(f, "\t"))
			continue
		}
		s.sent++
	}
	return s
}

// firstOKAfter: when the first SEND_OK of a send started after since came
// back (sends are sequential, so starts ascend).
func (s *javaSends) firstOKAfter(since time.Time) (time.Time, bool) {
	return cmFirstOKAfter(s.okStarts, s.okEnds, since)
}

// okWithin waits up to timeout for a SEND_OK of a send started after since;
// it fails the test if none comes, or if the program or a node exits.
func (j *javaLabClient) okWithin(grp *cmGroup, what string, since time.Time, timeout time.Duration) time.Time {
	j.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		j.checkAlive("waiting for the Java client's SEND_OK " + what)
		grp.checkCrashes("waiting for the Java client's SEND_OK " + what)
		s := j.sends()
		if at, ok := s.firstOKAfter(since); ok {
			return at
		}
		if time.Now().After(deadline) {
			j.t.Fatalf("no SEND_OK from the Java client %s within %v; sent %d, not acknowledged %s; first error of each kind:\n%s",
				what, timeout, s.sent, cmFormatCounts(s.notAcked), s.errorSamples())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *javaSends) errorSamples() string { return cmFormatSamples(s.samples) }

// stopProducing tells the program to stop sending and waits (bounded) until
// its sends.tsv is complete.
func (j *javaLabClient) stopProducing() {
	j.t.Helper()
	j.checkAlive("stopping the Java producer")
	if _, err := io.WriteString(j.stdin, "stop\n"); err != nil {
		j.t.Fatalf("tell the Java client to stop producing: %v", err)
	}
	if !waitFor(javaStopWait, func() bool { _, err := os.Stat(filepath.Join(j.dir, "producer.done")); return err == nil }) {
		j.t.Fatalf("the Java producer did not stop within %v; its other output:\n%s", javaStopWait, j.otherOutput())
	}
}

// received reads received.tsv: every delivery to the Java consumer, by body.
func (j *javaLabClient) received() map[string][]javaDelivery {
	j.t.Helper()
	got := map[string][]javaDelivery{}
	for _, f := range j.lines("received.tsv") {
		if len(f) != 6 {
			j.t.Errorf("the Java client's received.tsv has a line of an unknown shape: %q", strings.Join(f, "\t"))
			continue
		}
		q, _ := strconv.Atoi(f[1])
		off, _ := strconv.ParseInt(f[2], 10, 64)
		cl, _ := strconv.ParseInt(f[4], 10, 64)
		got[f[0]] = append(got[f[0]], javaDelivery{queue: q, offset: off, host: f[3], clOffset: cl, delivered: millis(f[5])})
	}
	return got
}

// finish closes the program's input, on which it shuts its clients down and
// exits; it must exit 0 within javaExitWait.
func (j *javaLabClient) finish() {
	j.t.Helper()
	_ = j.stdin.Close()
	select {
	case <-j.exited:
	case <-time.After(javaExitWait):
		j.t.Fatalf("the Java client did not exit within %v of its input closing; its other output:\n%s", javaExitWait, j.otherOutput())
	}
	if j.exitErr != nil {
		j.t.Errorf("the Java client exited with %v; its other output:\n%s", j.exitErr, j.otherOutput())
	}
}

// lines reads a tab-separated file of the program, only whole lines.
func (j *javaLabClient) lines(name string) [][]string {
	j.t.Helper()
	b, err := os.ReadFile(filepath.Join(j.dir, name))
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		j.t.Fatalf("read the Java client's %s: %v", name, err)
	}
	text := string(b)
	if i := strings.LastIndexByte(text, '\n'); i >= 0 {
		text = text[:i]
	} else {
		return nil
	}
	var out [][]string
	for _, l := range strings.Split(text, "\n") {
		out = append(out, strings.Split(l, "\t"))
	}
	return out
}

func millis(s string) time.Time {
	ms, _ := strconv.ParseInt(s, 10, 64)
	return time.UnixMilli(ms)
}
