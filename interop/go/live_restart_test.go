package interop

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// TestRestartWhileClientsRun: the name server and broker (one standalone process) are
// killed with SIGKILL, then stopped cleanly, each time restarted on the same ports and
// data while a Go producer keeps sending and a Go push consumer keeps consuming. Neither
// client is restarted: sends succeed again after each restart, and every acknowledged
// (SYNC_FLUSH) message is consumed.
func TestRestartWhileClientsRun(t *testing.T) {
	captureClientLog(t)
	const conf = "flushDiskType=SYNC_FLUSH\n"
	dir := t.TempDir()
	topic := uniq(t, "T")
	b := startBroker(t, brokerOpts{dataDir: dir, conf: conf, name: "run1"})
	ns, broker := b.NamesrvAdr, b.BrokerAddr

	p := newProducer(t, ns)
	sendSyncN(t, p, topic, []string{"first-" + nonce()}) // creates the topic
	c := newCollector()
	startPushConsumer(t, ns, topic, c, consumerOpts{from: consumer.ConsumeFromFirstOffset})

	var mu sync.Mutex
	var acked []string
	failures := 0
	stop := make(chan struct{})
	done := make(chan struct{})
	prefix := "live-" + nonce()
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			body := fmt.Sprintf("%s-%d", prefix, i)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			res, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte(body)))
			cancel()
			mu.Lock()
			if err == nil && res.Status == primitive.SendOK {
				acked = append(acked, body)
			} else {
				failures++
			}
			mu.Unlock()
			if err != nil {
				time.Sleep(50 * time.Millisecond)
			} else {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
	ackedNow := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	// Sends must succeed again after a restart, bounded in time.
	resumes := func(phase string) {
		t.Helper()
		before := ackedNow()
		if !waitFor(60*time.Second, func() bool { return ackedNow() >= before+20 }) {
			t.Fatalf("%s: the running producer did not recover within 60s (%d acknowledged before, %d now)", phase, before, ackedNow())
		}
	}

	resumes("before any restart")
	b.Kill()
	time.Sleep(time.Second)
	b = startBroker(t, brokerOpts{dataDir: dir, conf: conf, name: "run2", namesrvAddr: ns, brokerAddr: broker})
	resumes("after SIGKILL and restart")
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	b = startBroker(t, brokerOpts{dataDir: dir, conf: conf, name: "run3", namesrvAddr: ns, brokerAddr: broker})
	resumes("after a clean stop and restart")
	close(stop)
	<-done

	mu.Lock()
	want := append([]string{}, acked...)
	mu.Unlock()
	if !c.waitAll(want, 90*time.Second) {
		t.Fatalf("the running consumer did not get every acknowledged message: %s", compare(want, c.snapshot()))
	}
	got := c.snapshot()
	dups := 0
	for _, body := range want {
		dups += got[body] - 1
	}
	t.Logf("%d acknowledged, %d failed sends during the outages, all consumed, %d redelivered", len(want), failures, dups)
}
