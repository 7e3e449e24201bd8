package interop

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
)

// TestClusteringTwoConsumers: two push consumers of one group (clustering,
// different instance names) on a 4-queue topic share the queues. Every one
// of N messages is consumed, both consumers get some, and (once the group
// has rebalanced) no queue is consumed by both.
//
// Exercises HEART_BEAT, GET_CONSUMER_LIST_BY_GROUP (both client ids must be
// returned), NOTIFY_CONSUMER_IDS_CHANGED and the averagely allocator.
func TestClusteringTwoConsumers(t *testing.T) {
	captureClientLog(t)
	b := startBroker(t, brokerOpts{})
	topic := uniq(t, "T")
	group := uniq(t, "CG")
	p := newProducer(t, b.NamesrvAdr)

	// A consumer's Start fails if the topic has no route yet: create it.
	warm := "warmup-" + nonce()
	sendSyncN(t, p, topic, []string{warm})
	isWarm := func(body string) bool { return strings.HasPrefix(body, "warmup-") }

	c1, c2 := newCollector(), newCollector()
	c1.ignore, c2.ignore = isWarm, isWarm
	startPushConsumer(t, b.NamesrvAdr, topic, c1, consumerOpts{group: group, from: consumer.ConsumeFromFirstOffset})
	startPushConsumer(t, b.NamesrvAdr, topic, c2, consumerOpts{group: group, from: consumer.ConsumeFromFirstOffset})
	// The second consumer's heartbeat must make the broker notify the first
	// one (NOTIFY_CONSUMER_IDS_CHANGED → immediate rebalance). Give it time.
	time.Sleep(5 * time.Second)

	const n = 200
	bodies := bodiesN("cluster-"+nonce(), n)
	res := sendSyncN(t, p, topic, bodies)
	usedQueues := map[int]bool{}
	for _, r := range res {
		usedQueues[r.MessageQueue.QueueId] = true
	}
	if len(usedQueues) != 4 {
		t.Errorf("sends used queues %v, expected all 4 queues of an auto-created topic", usedQueues)
	}

	union := func() map[string]int {
		u := c1.snapshot()
		for k, v := range c2.snapshot() {
			u[k] += v
		}
		return u
	}
	ok := waitFor(60*time.Second, func() bool {
		u := union()
		for _, body := range bodies {
			if u[body] == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(1 * time.Second)
	s1, s2 := c1.snapshot(), c2.snapshot()
	u := union()
	d := compare(bodies, u)
	if !ok || len(d.missing) > 0 || len(d.unexpected) > 0 {
		t.Errorf("union of both consumers != sent set: %s", d)
	}
	t.Logf("consumer1 got %d distinct, consumer2 got %d distinct, union %d of %d", len(s1), len(s2), len(u), n)
	if len(s1) == 0 || len(s2) == 0 {
		t.Errorf("queues were not split: consumer1 received %d messages, consumer2 received %d (both must receive some)", len(s1), len(s2))
	}

	// Queue ownership: after rebalancing, each queue belongs to one consumer.
	q1, q2 := queuesOf(c1, s1), queuesOf(c2, s2)
	var both []int
	for q := range q1 {
		if q2[q] {
			both = append(both, q)
		}
	}
	sort.Ints(both)
	t.Logf("consumer1 queues %v, consumer2 queues %v", keys(q1), keys(q2))
	if len(both) > 0 || d.dupExtra > 0 {
		t.Errorf("queues %v were consumed by both members of the group (%d duplicate deliveries): the first consumer did not "+
			"rebalance within 5s of the second one joining (broker must send NOTIFY_CONSUMER_IDS_CHANGED and return both ids "+
			"from GET_CONSUMER_LIST_BY_GROUP)", both, d.dupExtra)
	}
}

func queuesOf(c *collector, got map[string]int) map[int]bool {
	out := map[int]bool{}
	for body := range got {
		if m := c.firstMsg(body); m != nil && m.Queue != nil {
			out[m.Queue.QueueId] = true
		}
	}
	return out
}

func keys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}
