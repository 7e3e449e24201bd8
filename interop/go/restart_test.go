package interop

import (
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// maxOffsets returns, per queue id, the highest queueOffset in the results.
func maxOffsets(res []*primitive.SendResult) map[int]int64 {
	out := map[int]int64{}
	for _, r := range res {
		if cur, ok := out[r.MessageQueue.QueueId]; !ok || r.QueueOffset > cur {
			out[r.MessageQueue.QueueId] = r.QueueOffset
		}
	}
	return out
}

// sendAfterRestart sends a few messages to the restarted broker and checks
// that queue offsets continue after those assigned before the restart.
func sendAfterRestart(t *testing.T, ns, topic string, before []*primitive.SendResult) []string {
	t.Helper()
	p := newProducer(t, ns)
	bodies := bodiesN("after-restart-"+nonce(), 4)
	res := sendSyncN(t, p, topic, bodies)
	prev := maxOffsets(before)
	for i, r := range res {
		if last, ok := prev[r.MessageQueue.QueueId]; ok && r.QueueOffset <= last {
			t.Errorf("after restart, %q got queue %d offset %d, but offset %d of that queue was already assigned before the restart (offsets reused)",
				bodies[i], r.MessageQueue.QueueId, r.QueueOffset, last)
		}
	}
	return bodies
}

// TestRestartDurability: messages and committed consumer offsets survive a
// clean shutdown (SIGTERM) and restart on the same data directory.
//
// Run 1: send 50, consume them with group G (offsets committed by the 5 s
// persist task and by Shutdown), send 50 more while G is down, SIGTERM.
// Run 2 (new ports, same dir): G resumes at its committed offsets and gets
// the other 50 (a few duplicates near the boundary are tolerated, a restart
// from offset 0 is not); a new FIRST_OFFSET group sees all 100.
func TestRestartDurability(t *testing.T) {
	captureClientLog(t)
	dir := t.TempDir()
	topic := uniq(t, "T")
	group := uniq(t, "CG")
	n := nonce()
	first := bodiesN("dur-a-"+n, 50)
	second := bodiesN("dur-b-"+n, 50)
	all := append(append([]string{}, first...), second...)

	// ---- run 1 ----
	b1 := startBroker(t, brokerOpts{dataDir: dir, name: "run1"})
	p1 := newProducer(t, b1.NamesrvAdr)
	res := sendSyncN(t, p1, topic, first)

	c1 := newCollector()
	_, stopC1 := startPushConsumer(t, b1.NamesrvAdr, topic, c1, consumerOpts{group: group, from: consumer.ConsumeFromFirstOffset})
	if !c1.waitAll(first, deliveryTimeout) {
		t.Fatalf("run 1: group did not consume the first 50 messages within %v: %s", deliveryTimeout, compare(first, c1.snapshot()))
	}
	// Let the 5 s offset-persist task run at least once, then shut down
	// (Shutdown persists offsets again with UPDATE_CONSUMER_OFFSET).
	time.Sleep(7 * time.Second)
	stopC1()
	expectExactly(t, "run 1 group "+group, first, c1.snapshot())
	perQueueRun1 := map[int]int{}
	for _, body := range first {
		if m := c1.firstMsg(body); m != nil && m.Queue != nil {
			perQueueRun1[m.Queue.QueueId]++
		}
	}

	res = append(res, sendSyncN(t, p1, topic, second)...)
	checkSendResults(t, topic, all, res)
	if err := b1.Stop(); err != nil {
		t.Errorf("clean shutdown: %v", err)
	}

	// ---- run 2: same data dir, new ports ----
	b2 := startBroker(t, brokerOpts{dataDir: dir, name: "run2"})
	after := sendAfterRestart(t, b2.NamesrvAdr, topic, res)

	c2 := newCollector()
	startPushConsumer(t, b2.NamesrvAdr, topic, c2, consumerOpts{group: group, from: consumer.ConsumeFromFirstOffset})
	wantRun2 := append(append([]string{}, second...), after...)
	if !c2.waitAll(wantRun2, deliveryTimeout) {
		t.Errorf("run 2: group %s did not receive the 50 messages sent after its last commit (+4 sent after restart) within %v: %s",
			group, deliveryTimeout, compare(wantRun2, c2.snapshot()))
	}
	time.Sleep(2 * time.Second)
	got2 := c2.snapshot()
	d := compare(wantRun2, got2)
	if len(d.missing) > 0 {
		t.Errorf("run 2: missing messages: %s", d)
	}
	// Redelivered messages from run 1 (allowed only near the committed boundary).
	firstSet := map[string]bool{}
	for _, body := range first {
		firstSet[body] = true
	}
	redelivered := 0
	perQueueRedelivered := map[int]int{}
	for body := range got2 {
		if firstSet[body] {
			redelivered++
			if m := c2.firstMsg(body); m != nil && m.Queue != nil {
				perQueueRedelivered[m.Queue.QueueId]++
			}
		} else if !contains(wantRun2, body) {
			t.Errorf("run 2: unexpected body %q", body)
		}
	}
	t.Logf("run 2: %d of the 50 messages consumed in run 1 were redelivered (per queue %v; run 1 consumed per queue %v)",
		redelivered, perQueueRedelivered, perQueueRun1)
	for q, k := range perQueueRedelivered {
		if k >= perQueueRun1[q] && perQueueRun1[q] > 1 {
			t.Errorf("run 2: queue %d redelivered all %d messages consumed in run 1: the group restarted from offset 0 "+
				"(committed offsets lost across restart)", q, k)
		}
	}
	if redelivered > 32 {
		t.Errorf("run 2: %d duplicates from run 1 (> 32): committed offsets were not honoured", redelivered)
	}

	// A new group reading from the first offset sees everything.
	c3 := newCollector()
	startPushConsumer(t, b2.NamesrvAdr, topic, c3, consumerOpts{from: consumer.ConsumeFromFirstOffset})
	want3 := append(append([]string{}, all...), after...)
	if !c3.waitAll(want3, deliveryTimeout) {
		t.Errorf("run 2: new FIRST_OFFSET group did not get all %d messages within %v", len(want3), deliveryTimeout)
	}
	time.Sleep(1 * time.Second)
	expectExactly(t, "run 2 new group", want3, c3.snapshot())
	checkConsumedMatchesSend(t, c3, all, res)
}

// TestKill9SyncFlush: with flushDiskType=SYNC_FLUSH every acknowledged
// message must survive SIGKILL of the broker.
func TestKill9SyncFlush(t *testing.T) {
	captureClientLog(t)
	const conf = "flushDiskType=SYNC_FLUSH\n"
	dir := t.TempDir()
	topic := uniq(t, "T")

	b1 := startBroker(t, brokerOpts{dataDir: dir, conf: conf, name: "run1"})
	p := newProducer(t, b1.NamesrvAdr)
	bodies := bodiesN("kill9-"+nonce(), 200)
	res := sendSyncN(t, p, topic, bodies)
	checkSendResults(t, topic, bodies, res)
	b1.Kill()

	b2 := startBroker(t, brokerOpts{dataDir: dir, conf: conf, name: "run2"})
	c := newCollector()
	startPushConsumer(t, b2.NamesrvAdr, topic, c, consumerOpts{from: consumer.ConsumeFromFirstOffset})
	if !c.waitAll(bodies, deliveryTimeout) {
		t.Errorf("after SIGKILL + restart, a FIRST_OFFSET consumer did not get all %d acknowledged messages within %v",
			len(bodies), deliveryTimeout)
	}
	time.Sleep(1 * time.Second)
	expectExactly(t, "after kill -9", bodies, c.snapshot())
	checkConsumedMatchesSend(t, c, bodies, res)
	sendAfterRestart(t, b2.NamesrvAdr, topic, res)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
