package interop

import (
	"context"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

const deliveryTimeout = 30 * time.Second

var hex32 = regexp.MustCompile(`(?i)^[0-9a-f]{32}$`)

// checkSendResults verifies the fields the Go client extracts from a SEND
// response: distinct (queueId, queueOffset) pairs, topic, non-empty ids.
func checkSendResults(t *testing.T, topic string, bodies []string, res []*primitive.SendResult) {
	t.Helper()
	seen := map[string]string{}
	for i, r := range res {
		if r.MessageQueue == nil || r.MessageQueue.Topic != topic {
			t.Errorf("send %q: result queue %v, want topic %s", bodies[i], r.MessageQueue, topic)
			continue
		}
		key := fmt.Sprintf("%d/%d", r.MessageQueue.QueueId, r.QueueOffset)
		if prev, dup := seen[key]; dup {
			t.Errorf("sends %q and %q both got queueId/queueOffset %s", prev, bodies[i], key)
		}
		seen[key] = bodies[i]
		if r.MsgID == "" {
			t.Errorf("send %q: empty MsgID (UNIQ_KEY) in result %s", bodies[i], r)
		}
		if !hex32.MatchString(r.OffsetMsgID) {
			t.Errorf("send %q: OffsetMsgID %q is not a 32-hex IPv4 offset message id", bodies[i], r.OffsetMsgID)
		}
		if r.QueueOffset < 0 {
			t.Errorf("send %q: negative queueOffset %d", bodies[i], r.QueueOffset)
		}
	}
}

// checkConsumedMatchesSend cross-checks consumed messages against the
// send results (same UNIQ_KEY msgId, queue id and queue offset).
func checkConsumedMatchesSend(t *testing.T, c *collector, bodies []string, res []*primitive.SendResult) {
	t.Helper()
	bad := 0
	for i, body := range bodies {
		m := c.firstMsg(body)
		if m == nil {
			continue // reported by the set comparison
		}
		r := res[i]
		if m.MsgId != r.MsgID || m.Queue == nil || m.Queue.QueueId != r.MessageQueue.QueueId || m.QueueOffset != r.QueueOffset {
			bad++
			if bad <= 5 {
				qid := -1
				if m.Queue != nil {
					qid = m.Queue.QueueId
				}
				t.Errorf("message %q: consumed msgId=%s queueId=%d queueOffset=%d, but send result said msgId=%s queueId=%d queueOffset=%d",
					body, m.MsgId, qid, m.QueueOffset, r.MsgID, r.MessageQueue.QueueId, r.QueueOffset)
			}
		}
		if m.Topic != r.MessageQueue.Topic {
			t.Errorf("message %q: consumed topic %q, want %q", body, m.Topic, r.MessageQueue.Topic)
		}
	}
	if bad > 5 {
		t.Errorf("... %d messages in total did not match their send result", bad)
	}
}

// consumeExactly starts a fresh-group FIRST_OFFSET consumer and asserts it
// receives exactly the given bodies (no extra, no duplicates).
func consumeExactly(t *testing.T, ns, topic string, bodies []string) *collector {
	t.Helper()
	c := newCollector()
	startPushConsumer(t, ns, topic, c, consumerOpts{from: consumer.ConsumeFromFirstOffset})
	if !c.waitAll(bodies, deliveryTimeout) {
		t.Errorf("not all messages consumed within %v", deliveryTimeout)
	}
	time.Sleep(1500 * time.Millisecond) // give duplicates/extras a chance to show up
	expectExactly(t, "consumer of "+topic, bodies, c.snapshot())
	return c
}

func testSendSync(t *testing.T, conf string) {
	captureClientLog(t)
	b := startBroker(t, brokerOpts{conf: conf})
	topic := uniq(t, "T")
	p := newProducer(t, b.NamesrvAdr)
	bodies := bodiesN("sync-"+nonce(), 20)
	res := sendSyncN(t, p, topic, bodies)
	checkSendResults(t, topic, bodies, res)
	queues := map[int]bool{}
	for _, r := range res {
		queues[r.MessageQueue.QueueId] = true
	}
	if len(queues) != 4 {
		t.Errorf("20 round-robin sends used queues %v; an auto-created topic should have 4 writable queues", queues)
	}
	c := consumeExactly(t, b.NamesrvAdr, topic, bodies)
	checkConsumedMatchesSend(t, c, bodies, res)
}

// TestSendSync: SEND_MESSAGE (code 10) one message at a time, then a push
// consumer in a new group receives exactly those bodies.
func TestSendSync(t *testing.T) { testSendSync(t, "") }

// TestSendSyncSyncFlush: same as TestSendSync with flushDiskType=SYNC_FLUSH.
func TestSendSyncSyncFlush(t *testing.T) { testSendSync(t, "flushDiskType=SYNC_FLUSH\n") }

// TestSendAsync: SendAsync with callbacks; wait for every callback.
func TestSendAsync(t *testing.T) {
	captureClientLog(t)
	b := startBroker(t, brokerOpts{})
	topic := uniq(t, "T")
	p := newProducer(t, b.NamesrvAdr)
	bodies := bodiesN("async-"+nonce(), 20)

	// Create the topic/route first with one sync send so the async sends do
	// not all race on route discovery; that body is expected too.
	res0 := sendSyncN(t, p, topic, bodies[:1])

	var mu sync.Mutex
	results := make([]*primitive.SendResult, len(bodies))
	results[0] = res0[0]
	errs := map[string]error{}
	var wg sync.WaitGroup
	for i := 1; i < len(bodies); i++ {
		i := i
		wg.Add(1)
		var cbOnce sync.Once
		err := p.SendAsync(context.Background(), func(ctx context.Context, r *primitive.SendResult, err error) {
			// v2.1.2 may call the callback twice on transport errors; count once.
			cbOnce.Do(func() {
				mu.Lock()
				if err != nil {
					errs[bodies[i]] = err
				} else {
					results[i] = r
				}
				mu.Unlock()
				wg.Done()
			})
		}, primitive.NewMessage(topic, []byte(bodies[i])))
		if err != nil {
			t.Fatalf("SendAsync #%d returned error: %v", i, err)
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("not all SendAsync callbacks were invoked within 20s")
	}
	mu.Lock()
	for body, err := range errs {
		t.Errorf("SendAsync %q: callback error: %v", body, err)
	}
	for i, r := range results {
		if r != nil && r.Status != primitive.SendOK {
			t.Errorf("SendAsync %q: status %d, want SendOK; %s", bodies[i], r.Status, r)
		}
	}
	mu.Unlock()
	if t.Failed() {
		t.FailNow()
	}
	checkSendResults(t, topic, bodies, results)
	c := consumeExactly(t, b.NamesrvAdr, topic, bodies)
	checkConsumedMatchesSend(t, c, bodies, results)
}

// TestSendOneWay: SendOneWay (response ignored by the client); all bodies
// must still be stored and consumed.
func TestSendOneWay(t *testing.T) {
	captureClientLog(t)
	b := startBroker(t, brokerOpts{})
	topic := uniq(t, "T")
	p := newProducer(t, b.NamesrvAdr)
	bodies := bodiesN("oneway-"+nonce(), 20)
	for i, body := range bodies {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := p.SendOneWay(ctx, primitive.NewMessage(topic, []byte(body)))
		cancel()
		if err != nil {
			t.Fatalf("SendOneWay #%d: %v", i, err)
		}
	}
	consumeExactly(t, b.NamesrvAdr, topic, bodies)
}

// TestSendBatch: SendSync with several messages in one call
// (SEND_BATCH_MESSAGE, code 320) → all consumed, in one queue, consecutive
// offsets starting at the returned queueOffset.
func TestSendBatch(t *testing.T) {
	captureClientLog(t)
	b := startBroker(t, brokerOpts{})
	topic := uniq(t, "T")
	p := newProducer(t, b.NamesrvAdr)
	n := nonce()
	var all []string
	var results []*primitive.SendResult
	var batches [][]string
	for k := 0; k < 3; k++ {
		bodies := bodiesN(fmt.Sprintf("batch%d-%s", k, n), 10)
		msgs := make([]*primitive.Message, len(bodies))
		for i, body := range bodies {
			msgs[i] = primitive.NewMessage(topic, []byte(body))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		r, err := p.SendSync(ctx, msgs...)
		cancel()
		if err != nil {
			t.Fatalf("batch SendSync #%d (%d messages): %v", k, len(msgs), err)
		}
		if r.Status != primitive.SendOK {
			t.Fatalf("batch SendSync #%d: status %d, want SendOK; %s", k, r.Status, r)
		}
		all = append(all, bodies...)
		results = append(results, r)
		batches = append(batches, bodies)
	}
	c := consumeExactly(t, b.NamesrvAdr, topic, all)
	// All messages of one batch land in the result's queue with consecutive
	// offsets starting at the returned queueOffset.
	for k, bodies := range batches {
		r := results[k]
		for i, body := range bodies {
			m := c.firstMsg(body)
			if m == nil {
				continue
			}
			if m.Queue == nil || m.Queue.QueueId != r.MessageQueue.QueueId || m.QueueOffset != r.QueueOffset+int64(i) {
				t.Errorf("batch %d message %d (%q): consumed at queue %v offset %d; send result said queue %d first offset %d",
					k, i, body, m.Queue, m.QueueOffset, r.MessageQueue.QueueId, r.QueueOffset)
			}
		}
	}
}
