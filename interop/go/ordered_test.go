package interop

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// Ordered (orderly) consumption: messages with the same sharding key go to
// one queue (producer.NewHashQueueSelector, FNV-1a of SHARDING_KEY), and an
// orderly push consumer (WithConsumerOrder) processes a queue only while it
// holds the broker lock for it (LOCK_BATCH_MQ 41 / UNLOCK_BATCH_MQ 42,
// §5.8), one message at a time.

const (
	ordKeys   = 16
	ordPerKey = 100
)

func ordBody(prefix string, key, seq int) string {
	return fmt.Sprintf("%s|%02d|%03d", prefix, key, seq)
}

func ordShardingKey(key int) string { return fmt.Sprintf("key-%02d", key) }

// ordDelivery is one call of the orderly handler for one test message.
type ordDelivery struct {
	n         int64 // global order in which handler calls started
	consumer  string
	key, seq  int
	queue     int
	offset    int64
	reconsume int32
	first     bool // first delivery of this (key, seq)
	start     time.Time
	end       time.Time
}

type ordRecorder struct {
	prefix string
	mu     sync.Mutex
	n      int64
	seen   map[[2]int]int
	list   []ordDelivery
}

func newOrdRecorder(prefix string) *ordRecorder {
	return &ordRecorder{prefix: prefix, seen: map[[2]int]int{}}
}

func (r *ordRecorder) parse(body string) (key, seq int, ok bool) {
	parts := strings.Split(body, "|")
	if len(parts) != 3 || parts[0] != r.prefix {
		return 0, 0, false
	}
	k, err1 := strconv.Atoi(parts[1])
	s, err2 := strconv.Atoi(parts[2])
	return k, s, err1 == nil && err2 == nil
}

// handler returns an orderly callback for consumer `name`: each test message
// takes `work` to process; decide (nil = success) picks the result.
func (r *ordRecorder) handler(name string, work time.Duration, decide func(d ordDelivery) consumer.ConsumeResult) handlerFunc {
	return func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		result := consumer.ConsumeSuccess
		for _, m := range msgs {
			key, seq, ok := r.parse(string(m.Body))
			if !ok {
				continue // warm-up
			}
			d := ordDelivery{consumer: name, key: key, seq: seq, offset: m.QueueOffset, reconsume: m.ReconsumeTimes, start: time.Now()}
			if m.Queue != nil {
				d.queue = m.Queue.QueueId
			} else {
				d.queue = -1
			}
			r.mu.Lock()
			r.n++
			d.n = r.n
			k := [2]int{key, seq}
			d.first = r.seen[k] == 0
			r.seen[k]++
			r.mu.Unlock()
			if work > 0 {
				time.Sleep(work)
			}
			if decide != nil {
				if res := decide(d); res != consumer.ConsumeSuccess {
					result = res
				}
			}
			d.end = time.Now()
			r.mu.Lock()
			r.list = append(r.list, d)
			r.mu.Unlock()
		}
		return result, nil
	}
}

func (r *ordRecorder) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

func (r *ordRecorder) snapshot() []ordDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]ordDelivery(nil), r.list...)
	sort.Slice(out, func(i, j int) bool { return out[i].n < out[j].n })
	return out
}

// sendOrdered sends keys x perKey messages, seq-major (all keys' seq 0, then
// seq 1, ...), each with its sharding key, and returns the queue of each key.
// All messages of a key must land in one queue at increasing offsets.
func sendOrdered(t *testing.T, p rocketmq.Producer, topic, prefix string, keys, perKey int) map[int]int {
	t.Helper()
	queueOf := map[int]int{}
	lastOff := map[int]int64{}
	for seq := 0; seq < perKey; seq++ {
		for key := 0; key < keys; key++ {
			m := primitive.NewMessage(topic, []byte(ordBody(prefix, key, seq)))
			m.WithShardingKey(ordShardingKey(key))
			r := sendMsg(t, p, m)
			q := r.MessageQueue.QueueId
			if prev, ok := queueOf[key]; ok && prev != q {
				t.Fatalf("key %d: seq %d went to queue %d, earlier ones to queue %d (hash selector must be stable)", key, seq, q, prev)
			}
			if prev, ok := lastOff[key]; ok && r.QueueOffset <= prev {
				t.Fatalf("key %d: seq %d got queue offset %d <= %d of the previous message of the key", key, seq, r.QueueOffset, prev)
			}
			queueOf[key], lastOff[key] = q, r.QueueOffset
		}
	}
	return queueOf
}

// checkFirstDeliveryOrder: every (key, seq) was delivered, and for each key
// the first deliveries happened in send order (seq 0, 1, 2, ...). Returns the
// number of extra (repeated) deliveries.
func checkFirstDeliveryOrder(t *testing.T, recs []ordDelivery, keys, perKey int, queueOf map[int]int) int {
	t.Helper()
	next := make([]int, keys)
	violations := 0
	dups := 0
	for _, d := range recs {
		if d.key < 0 || d.key >= keys || d.seq < 0 || d.seq >= perKey {
			t.Errorf("unexpected message key %d seq %d", d.key, d.seq)
			continue
		}
		if q, ok := queueOf[d.key]; ok && d.queue != q {
			t.Errorf("key %d seq %d consumed from queue %d, but it was sent to queue %d", d.key, d.seq, d.queue, q)
		}
		if !d.first {
			dups++
			continue
		}
		if d.seq != next[d.key] {
			violations++
			if violations <= 10 {
				t.Errorf("key %d: seq %d was delivered (first time, by %s, queue %d offset %d) before seq %d: order broken",
					d.key, d.seq, d.consumer, d.queue, d.offset, next[d.key])
			}
			if d.seq > next[d.key] {
				next[d.key] = d.seq + 1
			}
			continue
		}
		next[d.key]++
	}
	if violations > 10 {
		t.Errorf("... %d order violations in total", violations)
	}
	for k := 0; k < keys; k++ {
		got := map[int]bool{}
		for _, d := range recs {
			if d.key == k {
				got[d.seq] = true
			}
		}
		if len(got) != perKey {
			var missing []int
			for s := 0; s < perKey; s++ {
				if !got[s] {
					missing = append(missing, s)
				}
			}
			t.Errorf("key %d: %d of %d messages never delivered: seqs %v", k, len(missing), perKey, abbrevInts(missing))
		}
	}
	return dups
}

func abbrevInts(v []int) string {
	if len(v) <= 16 {
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("%v ... (%d total)", v[:16], len(v))
}

func orderlyOpts(group string, extra ...consumer.Option) consumerOpts {
	return consumerOpts{group: group, from: consumer.ConsumeFromFirstOffset,
		extra: append([]consumer.Option{consumer.WithConsumerOrder(true)}, extra...)}
}

// TestOrderedPerKey: 16 keys x 100 messages sent with the hash selector to an
// auto-created 4-queue topic while one orderly consumer runs: every message
// is delivered exactly once and each key's messages in send order.
func TestOrderedPerKey(t *testing.T) {
	captureClientLog(t)
	b := startBroker(t, brokerOpts{})
	topic := uniq(t, "T")
	p := newProducer(t, b.NamesrvAdr, producer.WithQueueSelector(producer.NewHashQueueSelector()))
	sendSyncN(t, p, topic, []string{"warmup-" + nonce()})

	prefix := "ord-" + nonce()
	rec := newOrdRecorder(prefix)
	startConsumer(t, b.NamesrvAdr, topic, consumer.MessageSelector{}, rec.handler("c1", 0, nil), orderlyOpts(uniq(t, "CG")))

	start := time.Now()
	queueOf := sendOrdered(t, p, topic, prefix, ordKeys, ordPerKey)
	t.Logf("sent %d messages in %v; key → queue %v", ordKeys*ordPerKey, time.Since(start).Round(time.Millisecond), queueOf)
	used := map[int]bool{}
	for _, q := range queueOf {
		used[q] = true
	}
	if len(used) < 2 {
		t.Errorf("16 keys used only queues %v of the 4-queue topic", keys(used))
	}

	total := ordKeys * ordPerKey
	if !waitFor(60*time.Second, func() bool { return rec.distinct() == total }) {
		t.Errorf("only %d of %d messages delivered within 60s (orderly consumption needs LOCK_BATCH_MQ to grant the queues)",
			rec.distinct(), total)
	}
	time.Sleep(1 * time.Second)
	recs := rec.snapshot()
	if dups := checkFirstDeliveryOrder(t, recs, ordKeys, ordPerKey, queueOf); dups > 0 {
		t.Errorf("%d messages were delivered more than once to the single orderly consumer", dups)
	}
	// Per queue, the single consumer must see strictly increasing offsets.
	last := map[int]int64{}
	for _, d := range recs {
		if prev, ok := last[d.queue]; ok && d.offset <= prev {
			t.Errorf("queue %d: offset %d delivered after offset %d", d.queue, d.offset, prev)
			break
		}
		last[d.queue] = d.offset
	}
}

// TestOrderedSecondConsumerJoins: an orderly consumer works through 1600
// messages (25 ms each); after about half, a second orderly consumer joins
// the group. Checked: every message is delivered; per key the first
// deliveries follow send order and no consumer ever processes a key's
// messages out of order or twice; repeats happen only on queues that changed
// owner; the newcomer does get queues and starts each of them exactly at the
// offset the broker reports as committed for the group (QUERY_CONSUMER_OFFSET
// asked while the queue had no owner); two consumers never process the same
// queue at the same time.
//
// v2.1.2 does not UNLOCK a queue it drops in a rebalance (only at Shutdown),
// so the newcomer gets it only when the broker-side lock expires (Apache: 60 s
// after the last renewal) and its next rebalance (every 20 s) runs: up to
// ~80 s. A broker that grants a lock held by another live client lets the
// newcomer start while the old owner is still consuming that queue, which the
// overlap check catches.
//
// Repeats are not bounded here: v2.1.2 orderly consumers prefetch a whole
// queue with commitOffset 0 in the pulls, persist offsets only every 5 s
// (first 10 s after start), and when dropping queues remoteBrokerOffsetStore
// .persist([q]) deletes every other queue's entry from its table, so at most
// one dropped queue's latest offset reaches the broker. The newcomer then
// correctly restarts from an older committed offset.
func TestOrderedSecondConsumerJoins(t *testing.T) {
	t.Parallel()
	captureClientLog(t)
	b := startBroker(t, brokerOpts{})
	topic := uniq(t, "T")
	group := uniq(t, "CG")
	p := newProducer(t, b.NamesrvAdr, producer.WithQueueSelector(producer.NewHashQueueSelector()))
	sendSyncN(t, p, topic, []string{"warmup-" + nonce()})

	prefix := "ordj-" + nonce()
	queueOf := sendOrdered(t, p, topic, prefix, ordKeys, ordPerKey)
	total := ordKeys * ordPerKey

	rec := newOrdRecorder(prefix)
	const work = 25 * time.Millisecond
	startConsumer(t, b.NamesrvAdr, topic, consumer.MessageSelector{}, rec.handler("c1", work, nil), orderlyOpts(group))
	if !waitFor(60*time.Second, func() bool { return rec.distinct() >= total/2 }) {
		t.Fatalf("first orderly consumer delivered only %d of %d messages within 60s", rec.distinct(), total)
	}
	joinAt := time.Now()
	doneAtJoin := rec.distinct()
	startConsumer(t, b.NamesrvAdr, topic, consumer.MessageSelector{}, rec.handler("c2", work, nil), orderlyOpts(group))
	t.Logf("second consumer joined after %d of %d messages", doneAtJoin, total)

	// Committed offsets while the queues given up by c1 have no owner yet.
	time.Sleep(5 * time.Second)
	queriedAt := time.Now()
	committed := map[int]int64{}
	for q := 0; q < 4; q++ {
		off, found, err := queryConsumerOffset(b.BrokerAddr, group, topic, q)
		switch {
		case err != nil:
			t.Errorf("QUERY_CONSUMER_OFFSET queue %d: %v", q, err)
		case found:
			committed[q] = off
		default:
			committed[q] = 0 // CONSUME_FROM_FIRST_OFFSET
		}
	}
	t.Logf("committed offsets 5s after the join: %v", committed)

	ok := waitFor(150*time.Second, func() bool { return rec.distinct() == total })
	if !ok {
		t.Errorf("only %d of %d messages delivered within 150s of the second consumer joining", rec.distinct(), total)
	}
	time.Sleep(1 * time.Second)
	recs := rec.snapshot()
	dups := checkFirstDeliveryOrder(t, recs, ordKeys, ordPerKey, queueOf)

	// Who consumed which queue, and when.
	byQueue := map[int][]ordDelivery{}
	perConsumer := map[string]int{}
	for _, d := range recs {
		byQueue[d.queue] = append(byQueue[d.queue], d)
		perConsumer[d.consumer]++
	}
	owners := map[int]map[string]int{}
	for q, list := range byQueue {
		owners[q] = map[string]int{}
		for _, d := range list {
			owners[q][d.consumer]++
		}
	}
	t.Logf("deliveries per consumer %v; per queue and consumer %v; repeated deliveries %d", perConsumer, owners, dups)
	if perConsumer["c2"] == 0 {
		t.Errorf("the second consumer never consumed anything: either the first one was not told to rebalance " +
			"(NOTIFY_CONSUMER_IDS_CHANGED) and finished every queue, or the newcomer never obtained the locks of its " +
			"queues (LOCK_BATCH_MQ must grant a queue whose lock expired: 60 s after the old owner's last renewal)")
	}
	for q, list := range byQueue {
		var firstC2 *ordDelivery
		var lastC1End time.Time
		for i := range list {
			if list[i].consumer == "c1" && firstC2 == nil && list[i].end.After(lastC1End) {
				lastC1End = list[i].end
			}
			if list[i].consumer == "c2" && firstC2 == nil {
				firstC2 = &list[i]
			}
		}
		if firstC2 == nil {
			continue
		}
		t.Logf("queue %d: c2's first delivery (offset %d) %v after it joined; c1's last delivery before that ended %v after the join",
			q, firstC2.offset, firstC2.start.Sub(joinAt).Round(time.Millisecond), lastC1End.Sub(joinAt).Round(time.Millisecond))
		// Compare only if the queue had no owner at query time.
		if lastC1End.Before(queriedAt) && firstC2.start.After(queriedAt) && owners[q]["c1"] > 0 && firstC2.offset != committed[q] {
			t.Errorf("queue %d: the new owner started at offset %d, but the broker reported committed offset %d for the group "+
				"(QUERY_CONSUMER_OFFSET) while the queue had no owner", q, firstC2.offset, committed[q])
		}
	}

	// Per consumer and key: strictly increasing, no repeats. Repeats only
	// where a queue changed owner.
	type ck struct {
		c string
		k int
	}
	lastSeq := map[ck]int{}
	for _, d := range recs {
		if prev, ok := lastSeq[ck{d.consumer, d.key}]; ok && d.seq <= prev {
			t.Errorf("%s processed key %d seq %d after seq %d", d.consumer, d.key, d.seq, prev)
		}
		lastSeq[ck{d.consumer, d.key}] = d.seq
		if !d.first && len(owners[d.queue]) < 2 {
			t.Errorf("key %d seq %d (queue %d) delivered again to %s although queue %d never changed owner",
				d.key, d.seq, d.queue, d.consumer, d.queue)
		}
	}

	// No two consumers on one queue at the same time.
	overlaps := 0
	for q, list := range byQueue {
		for i := range list {
			for j := i + 1; j < len(list); j++ {
				a, c := list[i], list[j]
				if a.consumer == c.consumer {
					continue
				}
				if a.start.Before(c.end) && c.start.Before(a.end) {
					overlaps++
					if overlaps <= 5 {
						t.Errorf("queue %d: %s processed key %d seq %d during [%s, %s] while %s processed key %d seq %d during [%s, %s]",
							q, a.consumer, a.key, a.seq, a.start.Format("15:04:05.000"), a.end.Format("15:04:05.000"),
							c.consumer, c.key, c.seq, c.start.Format("15:04:05.000"), c.end.Format("15:04:05.000"))
					}
				}
			}
		}
	}
	if overlaps > 0 {
		t.Errorf("%d overlapping processing intervals of two consumers on the same queue: the broker granted a queue "+
			"lock (LOCK_BATCH_MQ) that another live client held", overlaps)
	}
}

// TestOrderedSuspendCurrentQueue: the orderly handler returns
// SuspendCurrentQueueAMoment for the first delivery of seq 5 of each key; that
// message must come back (ReconsumeTimes 1) before any later message of its
// queue, and everything else flows in order.
func TestOrderedSuspendCurrentQueue(t *testing.T) {
	captureClientLog(t)
	b := startBroker(t, brokerOpts{})
	topic := uniq(t, "T")
	p := newProducer(t, b.NamesrvAdr, producer.WithQueueSelector(producer.NewHashQueueSelector()))
	sendSyncN(t, p, topic, []string{"warmup-" + nonce()})

	const nKeys, perKey, suspendSeq = 4, 20, 5
	prefix := "ords-" + nonce()
	queueOf := sendOrdered(t, p, topic, prefix, nKeys, perKey)

	rec := newOrdRecorder(prefix)
	decide := func(d ordDelivery) consumer.ConsumeResult {
		if d.seq == suspendSeq && d.first {
			return consumer.SuspendCurrentQueueAMoment
		}
		return consumer.ConsumeSuccess
	}
	startConsumer(t, b.NamesrvAdr, topic, consumer.MessageSelector{}, rec.handler("c1", 0, decide), orderlyOpts(uniq(t, "CG")))

	total := nKeys * perKey
	if !waitFor(45*time.Second, func() bool { return rec.distinct() == total }) {
		t.Errorf("only %d of %d messages delivered within 45s", rec.distinct(), total)
	}
	time.Sleep(1 * time.Second)
	recs := rec.snapshot()
	dups := checkFirstDeliveryOrder(t, recs, nKeys, perKey, queueOf)
	if dups != nKeys {
		t.Errorf("%d repeated deliveries, want exactly %d (seq %d of each key, once)", dups, nKeys, suspendSeq)
	}
	// In each queue's delivery sequence, the suspended delivery is followed
	// directly by the same message again.
	byQueue := map[int][]ordDelivery{}
	for _, d := range recs {
		byQueue[d.queue] = append(byQueue[d.queue], d)
	}
	for k := 0; k < nKeys; k++ {
		list := byQueue[queueOf[k]]
		found := false
		for i, d := range list {
			if d.key != k || d.seq != suspendSeq || !d.first {
				continue
			}
			found = true
			if i+1 >= len(list) {
				t.Errorf("key %d: suspended seq %d was never delivered again", k, suspendSeq)
				break
			}
			nx := list[i+1]
			if nx.key != k || nx.seq != suspendSeq {
				t.Errorf("key %d (queue %d): after SuspendCurrentQueueAMoment on seq %d the next delivery of the queue was key %d seq %d, want the same message again",
					k, d.queue, suspendSeq, nx.key, nx.seq)
			} else if nx.reconsume != 1 || nx.offset != d.offset {
				t.Errorf("key %d: redelivery of seq %d has ReconsumeTimes %d offset %d, want 1 and offset %d",
					k, suspendSeq, nx.reconsume, nx.offset, d.offset)
			}
			break
		}
		if !found {
			t.Errorf("key %d: seq %d was never delivered", k, suspendSeq)
		}
	}
}
