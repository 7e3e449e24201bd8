package interop

import (
	"context"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// TestLongPollingWakeup: an idle push consumer's pulls are parked by the
// broker (PULL_MESSAGE with the SUSPEND flag, suspendTimeoutMillis=20000);
// a newly stored message must wake the parked pull at once.
//
// The consumer uses a 5 s pull interval so that a broker that does NOT hold
// pulls (answers PULL_NOT_FOUND immediately) is detected: the client would
// then only pick the message up on its next pull, up to 5 s later. Timeline
// (T0 = warm-up message received, all queues' first pulls happen at ~T0):
//   - warm-up queue: FOUND at T0, sleeps 5 s, pulls again at T0+5 (parked);
//   - other queues: parked from ~T0 until the 20 s hold expires;
//   - probe 1 at T0+6.5 s; its queue re-pulls ~5 s after delivery;
//   - probe 2 at T0+13.5 s (all pulls parked again).
//
// Each probe's send→consume latency must be < 1 s.
func TestLongPollingWakeup(t *testing.T) {
	captureClientLog(t)
	b := startBroker(t, brokerOpts{})
	topic := uniq(t, "T")
	p := newProducer(t, b.NamesrvAdr)
	warm := "warmup-" + nonce()
	sendSyncN(t, p, topic, []string{warm})

	c := newCollector()
	startPushConsumer(t, b.NamesrvAdr, topic, c, consumerOpts{
		from:  consumer.ConsumeFromFirstOffset,
		extra: []consumer.Option{consumer.WithPullInterval(5 * time.Second)},
	})
	if !c.waitAll([]string{warm}, deliveryTimeout) {
		t.Fatalf("warm-up message not consumed within %v", deliveryTimeout)
	}
	t0, _ := c.receivedAt(warm)

	probes := []struct {
		at   time.Duration
		body string
	}{
		{6500 * time.Millisecond, "probe1-" + nonce()},
		{13500 * time.Millisecond, "probe2-" + nonce()},
	}
	for _, pr := range probes {
		time.Sleep(time.Until(t0.Add(pr.at)))
		sent := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte(pr.body)))
		cancel()
		if err != nil || r.Status != primitive.SendOK {
			t.Fatalf("send %s: result %v, err %v", pr.body, r, err)
		}
		if !c.waitAll([]string{pr.body}, 10*time.Second) {
			t.Errorf("%s (queue %d) was not consumed within 10s", pr.body, r.MessageQueue.QueueId)
			continue
		}
		at, _ := c.receivedAt(pr.body)
		lat := at.Sub(sent)
		t.Logf("%s: queue %d, send→consume latency %v (send RTT included)", pr.body, r.MessageQueue.QueueId, lat.Round(time.Millisecond))
		if lat >= time.Second {
			t.Errorf("%s (queue %d): send→consume latency %v >= 1s; the parked PULL_MESSAGE was not woken by the new message "+
				"(long polling not working: the consumer only saw it on its next pull)", pr.body, r.MessageQueue.QueueId, lat)
		}
	}
}
