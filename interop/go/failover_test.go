package interop

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
)

// TestClusteringFailover: two consumers of a group split a 4-queue topic;
// then one is shut down (v2.1.2 persists its offsets with
// UPDATE_CONSUMER_OFFSET and closes its connection; it never sends
// UNREGISTER_CLIENT). The survivor must take over the stopped consumer's
// queues and receive every later message, resuming at the offsets the
// stopped one committed: a few repeats are tolerated (<= 32), consuming a
// taken-over queue again from the start is not.
func TestClusteringFailover(t *testing.T) {
	t.Parallel()
	captureClientLog(t)
	b := startBroker(t, brokerOpts{})
	topic := uniq(t, "T")
	group := uniq(t, "CG")
	p := newProducer(t, b.NamesrvAdr)
	sendSyncN(t, p, topic, []string{"warmup-" + nonce()})
	isWarm := func(body string) bool { return strings.HasPrefix(body, "warmup-") }

	c1, c2 := newCollector(), newCollector()
	c1.ignore, c2.ignore = isWarm, isWarm
	startPushConsumer(t, b.NamesrvAdr, topic, c1, consumerOpts{group: group, from: consumer.ConsumeFromFirstOffset})
	_, stop2 := startPushConsumer(t, b.NamesrvAdr, topic, c2, consumerOpts{group: group, from: consumer.ConsumeFromFirstOffset})
	time.Sleep(5 * time.Second) // both members known, queues split

	n := nonce()
	first := bodiesN("failover-a-"+n, 200)
	sendSyncN(t, p, topic, first)
	union := func() map[string]int {
		u := c1.snapshot()
		for k, v := range c2.snapshot() {
			u[k] += v
		}
		return u
	}
	if !waitFor(60*time.Second, func() bool {
		u := union()
		for _, body := range first {
			if u[body] == 0 {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("phase 1: the group did not consume all 200 messages within 60s: %s", compare(first, union()))
	}
	s2 := c2.snapshot()
	q1, q2 := queuesOf(c1, c1.snapshot()), queuesOf(c2, s2)
	t.Logf("phase 1: consumer1 queues %v (%d msgs), consumer2 queues %v (%d msgs)", keys(q1), len(c1.snapshot()), keys(q2), len(s2))
	if len(s2) == 0 || len(q1) == 0 {
		t.Fatalf("phase 1: queues were not split between the two consumers (consumer1 queues %v, consumer2 queues %v)", keys(q1), keys(q2))
	}
	perQueue2 := map[int]int{}
	for body := range s2 {
		if m := c2.firstMsg(body); m != nil && m.Queue != nil {
			perQueue2[m.Queue.QueueId]++
		}
	}

	// v2.1.2 persists offsets every 5 s (first run 10 s after start) and
	// commits them in pulls; Shutdown persists once more.
	time.Sleep(6 * time.Second)
	stop2()
	stoppedAt := time.Now()

	second := bodiesN("failover-b-"+n, 200)
	res := sendSyncN(t, p, topic, second)
	if !c1.waitAll(second, 60*time.Second) {
		t.Errorf("after consumer2 stopped, consumer1 did not receive all 200 new messages within 60s: %s", compare(second, c1.snapshot()))
	}
	time.Sleep(1 * time.Second)

	// The survivor now consumes the stopped member's queues.
	var takeover []time.Duration
	for i, body := range second {
		if q2[res[i].MessageQueue.QueueId] {
			if at, ok := c1.receivedAt(body); ok {
				takeover = append(takeover, at.Sub(stoppedAt))
			}
		}
	}
	sort.Slice(takeover, func(i, j int) bool { return takeover[i] < takeover[j] })
	if len(takeover) > 0 {
		t.Logf("first message of a taken-over queue reached consumer1 %v after consumer2's Shutdown", takeover[0].Round(time.Millisecond))
	}
	for body := range c2.snapshot() {
		if strings.HasPrefix(body, "failover-b-") {
			t.Errorf("consumer2 received %q after its Shutdown", body)
		}
	}

	// Offsets committed by consumer2 are honoured.
	s1 := c1.snapshot()
	redelivered := 0
	perQueueRedelivered := map[int]int{}
	for body := range s2 {
		if s1[body] > 0 {
			redelivered++
			if m := c1.firstMsg(body); m != nil && m.Queue != nil {
				perQueueRedelivered[m.Queue.QueueId]++
			}
		}
	}
	t.Logf("%d of consumer2's %d messages were consumed again by consumer1 (per queue %v; consumer2 consumed per queue %v)",
		redelivered, len(s2), perQueueRedelivered, perQueue2)
	for q, k := range perQueueRedelivered {
		if k >= perQueue2[q] && perQueue2[q] > 1 {
			t.Errorf("queue %d: consumer1 consumed all %d messages consumer2 had consumed there: it restarted the queue "+
				"from the beginning instead of consumer2's committed offset", q, k)
		}
	}
	if redelivered > 32 {
		t.Errorf("%d messages consumed by consumer2 were redelivered to consumer1 (> 32): committed offsets not honoured", redelivered)
	}
	d := compare(second, s1)
	if len(d.missing) > 0 {
		t.Errorf("consumer1 missed messages sent after the failover: %s", d)
	}
}
