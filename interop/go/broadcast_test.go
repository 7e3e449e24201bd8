package interop

import (
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
)

// TestBroadcasting: two consumers of one group in BROADCASTING mode each get
// every message (offsets live in local files on the client; the broker must
// serve every queue to each member instead of splitting them).
func TestBroadcasting(t *testing.T) {
	captureClientLog(t)
	b := startBroker(t, brokerOpts{})
	topic := uniq(t, "T")
	group := uniq(t, "CG")
	removeLocalOffsetsAtCleanup(t, group)
	p := newProducer(t, b.NamesrvAdr)
	sendSyncN(t, p, topic, []string{"warmup-" + nonce()})
	isWarm := func(body string) bool { return strings.HasPrefix(body, "warmup-") }

	c1, c2 := newCollector(), newCollector()
	c1.ignore, c2.ignore = isWarm, isWarm
	bc := []consumer.Option{consumer.WithConsumerModel(consumer.BroadCasting)}
	startPushConsumer(t, b.NamesrvAdr, topic, c1, consumerOpts{group: group, from: consumer.ConsumeFromFirstOffset, extra: bc})
	startPushConsumer(t, b.NamesrvAdr, topic, c2, consumerOpts{group: group, from: consumer.ConsumeFromFirstOffset, extra: bc})
	time.Sleep(2 * time.Second)

	bodies := bodiesN("bcast-"+nonce(), 100)
	sendSyncN(t, p, topic, bodies)
	ok1 := c1.waitAll(bodies, deliveryTimeout)
	ok2 := c2.waitAll(bodies, deliveryTimeout)
	time.Sleep(1 * time.Second)
	if !ok1 || !ok2 {
		t.Errorf("within %v consumer1 got %d and consumer2 got %d of %d messages (broadcasting: each must get all)",
			deliveryTimeout, len(c1.snapshot()), len(c2.snapshot()), len(bodies))
	}
	expectExactly(t, "broadcasting consumer1", bodies, c1.snapshot())
	expectExactly(t, "broadcasting consumer2", bodies, c2.snapshot())
}
