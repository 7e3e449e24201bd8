package interop

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// Delay levels (§5.2): DELAY=n parks the message in SCHEDULE_TOPIC_XXXX and
// the broker puts it into its real topic when due (default table
// 1s 5s 10s 30s 1m ...). A message must not be visible in its real topic
// before it is due.

const delayTolerance = 500 * time.Millisecond

// lineClock records when each output line of a process arrived.
type lineClock struct {
	mu      sync.Mutex
	partial []byte
	lines   []timedLine
}

type timedLine struct {
	at   time.Time
	text string
}

func (l *lineClock) Write(p []byte) (int, error) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := strings.IndexByte(string(l.partial), '\n')
		if i < 0 {
			break
		}
		if len(l.lines) < 10000 {
			l.lines = append(l.lines, timedLine{now, string(l.partial[:i])})
		}
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

func (l *lineClock) find(substr string) (timedLine, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ln := range l.lines {
		if strings.Contains(ln.text, substr) {
			return ln, true
		}
	}
	return timedLine{}, false
}

func (l *lineClock) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var sb strings.Builder
	for _, ln := range l.lines {
		fmt.Fprintf(&sb, "%s %s\n", ln.at.Format("15:04:05.000"), ln.text)
	}
	sb.Write(l.partial)
	return sb.String()
}

var (
	reBorn  = regexp.MustCompile(`BornTimestamp=(\d+)`)
	reStore = regexp.MustCompile(`StoreTimestamp=(\d+)`)
)

// TestSeedDelayProducerConsumer runs the tutorial's delay example: the
// producer in seed/delayproducer (verbatim, address → 127.0.0.1:9876) sends
// "this is delay message" to imooc1 with WithDelayTimeLevel(2); the tutorial
// consumer (seed/consumer, group maxshop) started right after must print it
// 5 s ± 0.5 s after it was sent (BornTimestamp), not earlier.
func TestSeedDelayProducerConsumer(t *testing.T) {
	captureClientLog(t)
	for _, a := range []string{seedNamesrv, seedBroker} {
		if !portFree(a) {
			t.Skipf("SKIP: %s is already in use; the seed programs hard-code 127.0.0.1:9876, so this test needs the default ports 9876/10911 free", a)
		}
	}
	bin := t.TempDir()
	prodBin := buildSeed(t, bin, "delayproducer")
	consBin := buildSeed(t, bin, "consumer")
	startBroker(t, brokerOpts{namesrvAddr: seedNamesrv, brokerAddr: seedBroker, name: "default-ports"})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pcmd := exec.CommandContext(ctx, prodBin)
	pcmd.Env = seedEnv()
	pout, perr := pcmd.CombinedOutput()
	t.Logf("seed delay producer output:\n%s", pout)
	if ctx.Err() != nil || perr != nil {
		t.Fatalf("seed delay producer failed: %v (ctx %v)", perr, ctx.Err())
	}
	if !strings.Contains(string(pout), "发送成功:SendResult [sendStatus=0,") {
		t.Fatalf("seed delay producer output does not contain `发送成功:SendResult [sendStatus=0,` (SendOK)")
	}

	out := &lineClock{}
	ccmd := exec.Command(consBin)
	ccmd.Env = seedEnv()
	ccmd.Stdout, ccmd.Stderr = out, out
	if err := ccmd.Start(); err != nil {
		t.Fatalf("start seed consumer: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- ccmd.Wait() }()
	defer func() {
		_ = ccmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("seed consumer did not die after SIGKILL")
		}
		t.Logf("seed consumer output:\n%s", out.String())
	}()

	const marker = "body=this is delay message"
	var line timedLine
	got := waitFor(20*time.Second, func() bool {
		var ok bool
		line, ok = out.find(marker)
		return ok
	})
	if !got {
		t.Fatalf("seed consumer did not print %q within 20s", marker)
	}
	if !strings.Contains(line.text, "获取到值:[Message=[topic=imooc1, body=this is delay message") {
		t.Errorf("consumer line not in the expected `获取到值:[Message=[topic=imooc1, body=...` form: %s", line.text)
	}
	mb := reBorn.FindStringSubmatch(line.text)
	if mb == nil {
		t.Fatalf("no BornTimestamp in consumer line: %s", line.text)
	}
	born, _ := strconv.ParseInt(mb[1], 10, 64)
	lat := line.at.Sub(time.UnixMilli(born))
	if ms := reStore.FindStringSubmatch(line.text); ms != nil {
		st, _ := strconv.ParseInt(ms[1], 10, 64)
		t.Logf("delivered %v after BornTimestamp (StoreTimestamp - BornTimestamp = %dms)", lat.Round(time.Millisecond), st-born)
	}
	if lat < 5*time.Second-delayTolerance || lat > 5*time.Second+delayTolerance {
		t.Errorf("level-2 delay message printed %v after it was sent (BornTimestamp), want 5s ± %v", lat.Round(time.Millisecond), delayTolerance)
	}
}

// TestDelayLevels: levels 1, 2, 3 (1 s, 5 s, 10 s) sent while a consumer is
// already pulling the topic: each is received (send → receive) within
// ± 0.5 s of its delay, not earlier, in its real topic, once.
func TestDelayLevels(t *testing.T) {
	captureClientLog(t)
	b := startBroker(t, brokerOpts{})
	topic := uniq(t, "T")
	p := newProducer(t, b.NamesrvAdr)
	warm := "warmup-" + nonce()
	sendSyncN(t, p, topic, []string{warm})
	c := newCollector()
	startPushConsumer(t, b.NamesrvAdr, topic, c, consumerOpts{from: consumer.ConsumeFromFirstOffset})
	if !c.waitAll([]string{warm}, deliveryTimeout) {
		t.Fatalf("warm-up message not consumed within %v", deliveryTimeout)
	}
	time.Sleep(500 * time.Millisecond)

	levels := []struct {
		level int
		delay time.Duration
	}{{1, 1 * time.Second}, {2, 5 * time.Second}, {3, 10 * time.Second}}
	n := nonce()
	sentAt := map[string]time.Time{}
	var bodies []string
	for _, lv := range levels {
		body := fmt.Sprintf("delay-%s-level%d", n, lv.level)
		m := primitive.NewMessage(topic, []byte(body))
		m.WithDelayTimeLevel(lv.level)
		sentAt[body] = time.Now()
		sendMsg(t, p, m)
		bodies = append(bodies, body)
	}
	if !c.waitAll(bodies, 20*time.Second) {
		t.Errorf("delayed messages missing after 20s: %s", compare(bodies, c.snapshot()))
	}
	time.Sleep(500 * time.Millisecond)
	for i, lv := range levels {
		body := bodies[i]
		at, ok := c.receivedAt(body)
		if !ok {
			continue
		}
		m := c.firstMsg(body)
		lat := at.Sub(sentAt[body])
		t.Logf("level %d: received %v after send (StoreTimestamp - BornTimestamp = %dms, topic %s, ReconsumeTimes %d)",
			lv.level, lat.Round(time.Millisecond), m.StoreTimestamp-m.BornTimestamp, m.Topic, m.ReconsumeTimes)
		if lat < lv.delay-delayTolerance {
			t.Errorf("level %d message visible in its topic %v after send, before its %v delay", lv.level, lat.Round(time.Millisecond), lv.delay)
		} else if lat > lv.delay+delayTolerance {
			t.Errorf("level %d message delivered %v after send, want %v ± %v", lv.level, lat.Round(time.Millisecond), lv.delay, delayTolerance)
		}
		if m.Topic != topic || m.Queue == nil || m.Queue.Topic != topic {
			t.Errorf("level %d message delivered with topic %q from queue %v, want topic %s", lv.level, m.Topic, m.Queue, topic)
		}
		// Apache keeps the schedule properties on the delivered message:
		// ScheduleMessageService.messageTimeup copies the properties string
		// before it clears DELAY in the map, so DELAY, REAL_TOPIC and
		// REAL_QID are all still stored with the message in its real topic.
		if m.Queue != nil {
			t.Logf("level %d: DELAY=%q REAL_TOPIC=%q REAL_QID=%q (arrived in queue %d)", lv.level,
				m.GetProperty("DELAY"), m.GetProperty("REAL_TOPIC"), m.GetProperty("REAL_QID"), m.Queue.QueueId)
			for _, kv := range [][2]string{
				{"DELAY", strconv.Itoa(lv.level)},
				{"REAL_TOPIC", topic},
				{"REAL_QID", strconv.Itoa(m.Queue.QueueId)},
			} {
				if got := m.GetProperty(kv[0]); got != kv[1] {
					t.Errorf("level %d message delivered with property %s=%q, want %q (Apache keeps DELAY/REAL_TOPIC/REAL_QID "+
						"on a delivered delay message); properties: %v", lv.level, kv[0], got, kv[1], m.GetProperties())
				}
			}
		}
	}
	got := c.snapshot()
	for _, body := range bodies {
		if got[body] > 1 {
			t.Errorf("%s delivered %d times", body, got[body])
		}
	}
}

// TestDelayKill9Restart: 1000 level-2 (5 s) messages; the broker is SIGKILLed
// 2 s after the last send and restarted on the same data directory. A
// consumer started after the restart receives all 1000, none before its due
// time (receive >= send + 5 s - 100 ms). Scheduled messages and the schedule
// progress must survive a crash.
func TestDelayKill9Restart(t *testing.T) {
	t.Parallel()
	captureClientLog(t)
	dir := t.TempDir()
	topic := uniq(t, "T")
	b1 := startBroker(t, brokerOpts{dataDir: dir, name: "run1"})
	p := newProducer(t, b1.NamesrvAdr)
	sendSyncN(t, p, topic, []string{"warmup-" + nonce()})

	const total, workers = 1000, 8
	bodies := bodiesN("delay-kill-"+nonce(), total)
	sentAt := make([]time.Time, total)
	errs := make(chan error, total)
	var wg sync.WaitGroup
	begin := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < total; i += workers {
				m := primitive.NewMessage(topic, []byte(bodies[i]))
				m.WithDelayTimeLevel(2)
				sentAt[i] = time.Now()
				if _, err := trySend(p, m); err != nil {
					errs <- fmt.Errorf("%s: %v", bodies[i], err)
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("send: %v", err)
	}
	sendDone := time.Now()
	firstDue := begin.Add(5 * time.Second)
	t.Logf("sent %d level-2 messages in %v", total, sendDone.Sub(begin).Round(time.Millisecond))
	time.Sleep(time.Until(sendDone.Add(2 * time.Second)))
	killedAt := time.Now()
	b1.Kill()
	beforeDue := killedAt.Before(firstDue)
	if !beforeDue {
		t.Logf("note: sending took long; the broker was killed %v after the first message was due", killedAt.Sub(firstDue).Round(time.Millisecond))
	}

	b2 := startBroker(t, brokerOpts{dataDir: dir, name: "run2"})
	c := newCollector()
	c.ignore = func(body string) bool { return strings.HasPrefix(body, "warmup-") }
	startPushConsumer(t, b2.NamesrvAdr, topic, c, consumerOpts{from: consumer.ConsumeFromFirstOffset})
	if !c.waitAll(bodies, 45*time.Second) {
		t.Errorf("after SIGKILL + restart, %d of %d delayed messages were not delivered within 45s: %s",
			total-len(c.snapshot()), total, compare(bodies, c.snapshot()))
	}
	time.Sleep(2 * time.Second)
	got := c.snapshot()
	d := compare(bodies, got)
	if len(d.unexpected) > 0 {
		t.Errorf("unexpected messages: %s", d)
	}
	if d.dupExtra > 0 {
		if beforeDue {
			t.Errorf("%d duplicate deliveries although the broker was killed before any message was due: %s", d.dupExtra, d)
		} else {
			t.Logf("%d duplicate deliveries (some messages were due before the kill)", d.dupExtra)
		}
	}
	early := 0
	var lats []time.Duration
	for i, body := range bodies {
		at, ok := c.receivedAt(body)
		if !ok {
			continue
		}
		lat := at.Sub(sentAt[i])
		lats = append(lats, lat)
		if lat < 5*time.Second-100*time.Millisecond {
			early++
			if early <= 5 {
				t.Errorf("%s received %v after its send, before its 5s delay", body, lat.Round(time.Millisecond))
			}
		}
	}
	if early > 5 {
		t.Errorf("... %d messages in total were delivered early", early)
	}
	if len(lats) > 0 {
		sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
		t.Logf("send → receive: min %v, median %v, max %v", lats[0].Round(time.Millisecond),
			lats[len(lats)/2].Round(time.Millisecond), lats[len(lats)-1].Round(time.Millisecond))
	}
}
