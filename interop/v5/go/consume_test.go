package v5interop

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
)

const perGroup = 10

var messageGroups = []string{"order-a", "order-b", "order-c"}

// sendInterleaved sends seq 0..perGroup-1 of every message group, one at a time, interleaved
// a0 b0 c0 a1 b1 c1 ...; it returns message id -> label.
func sendInterleaved(t *testing.T, p rmq.Producer, topic, prefix string) map[string]string {
	t.Helper()
	ids := map[string]string{}
	for seq := 0; seq < perGroup; seq++ {
		for _, g := range messageGroups {
			label := fmt.Sprintf("%s:%s:%d", prefix, g, seq)
			m := newMessage(topic, label)
			m.SetMessageGroup(g)
			m.SetTag("fifo")
			m.SetKeys(label)
			m.AddProperty("seq", strconv.Itoa(seq))
			ids[send(t, p, m)] = label
		}
	}
	return ids
}

func checkPerGroupOrder(t *testing.T, seqs map[string][]int, context string) {
	t.Helper()
	want := make([]int, perGroup)
	for i := range want {
		want[i] = i
	}
	if len(seqs) != len(messageGroups) {
		t.Errorf("message groups seen: %v%s", seqs, context)
	}
	for _, g := range messageGroups {
		if !reflect.DeepEqual(seqs[g], want) {
			t.Errorf("order of message group %s: %v, want %v%s", g, seqs[g], want, context)
		}
	}
}

// FIFO topic, orderly group: a SimpleConsumer gets each message group in send order.
func TestFifoSimpleConsumerPerGroupOrder(t *testing.T) {
	t.Parallel()
	dumpOnFailure(t)
	p := newProducer(t, nil, topicFifo)
	c := newSimpleConsumer(t, groupFifo, topicFifo)
	ids := sendInterleaved(t, p, topicFifo, "simple")
	total := perGroup * len(messageGroups)
	// receive() hands out, per message group, only what follows the acked messages; ack in order
	gs := receiveUntil(t, c, invisible, true, 40*time.Second, func(g []got) bool { return len(g) >= total })
	if len(gs) != total {
		t.Fatalf("received %d, want %d:%s", len(gs), total, describeAll(gs))
	}
	seqs := map[string][]int{}
	for _, g := range gs {
		m := g.m
		label := ids[m.GetMessageId()]
		parts := strings.Split(label, ":")
		if label == "" || string(m.GetBody()) != label || str(m.GetMessageGroup()) != parts[1] ||
			str(m.GetTag()) != "fifo" || !reflect.DeepEqual(m.GetKeys(), []string{label}) || m.GetDeliveryAttempt() != 1 {
			t.Errorf("arrived as %s (sent as %q)", describe(m), label)
		}
		seq, _ := strconv.Atoi(m.GetProperties()["seq"])
		seqs[str(m.GetMessageGroup())] = append(seqs[str(m.GetMessageGroup())], seq)
	}
	checkPerGroupOrder(t, seqs, "\nreceived:"+describeAll(gs))
	if more := receiveFor(t, c, invisible, true, 3*time.Second); len(more) > 0 {
		t.Errorf("more after all were acked:%s", describeAll(more))
	}
}

// FIFO topic, orderly group, PushConsumer: each message group in order, one message of a
// group at a time.
//
// Unlike the Java suite, no consumption fails here: the Go client v5.1.4 does not keep a
// message group's order across a FAILURE. Its fifoConsumeService.consumeIteratively schedules the
// retry (eraseFifoMessage -> consumeWithDuration, a timer) and goes straight on to the next
// message of the batch, so order-b 5, 6, 7 were consumed before the retry of order-b 4
// (NOTES-java-go.md). That is the client's doing, not the server's.
func TestFifoPushConsumerPerGroupOrder(t *testing.T) {
	t.Parallel()
	dumpOnFailure(t)
	total := perGroup * len(messageGroups)
	var mu sync.Mutex
	seqs := map[string][]int{}
	var calls, overlaps []string
	busy := map[string]int{}
	done := make(chan struct{})
	p := newProducer(t, nil, topicFifoPush)
	newPushConsumer(t, groupFifoPush, topicFifoPush, func(m *rmq.MessageView) rmq.ConsumerResult {
		g := str(m.GetMessageGroup())
		seq, _ := strconv.Atoi(m.GetProperties()["seq"])
		mu.Lock()
		calls = append(calls, fmt.Sprintf("%s:%d#%d", g, seq, m.GetDeliveryAttempt()))
		busy[g]++
		if busy[g] > 1 {
			overlaps = append(overlaps, fmt.Sprintf("%s:%d", g, seq))
		}
		mu.Unlock()
		time.Sleep(20 * time.Millisecond) // widen the window in which a second message of the group would overlap
		mu.Lock()
		defer mu.Unlock()
		busy[g]--
		seqs[g] = append(seqs[g], seq)
		if len(calls) == total {
			close(done)
		}
		return rmq.SUCCESS
	})
	sendInterleaved(t, p, topicFifoPush, "push")
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("consumed %d of %d within 60 s: %v", len(calls), total, seqs)
	}
	time.Sleep(2 * time.Second) // anything consumed twice would show up now
	mu.Lock()
	defer mu.Unlock()
	ctx := fmt.Sprintf("\ncalls (group:seq#attempt): %v", calls)
	checkPerGroupOrder(t, seqs, ctx)
	if len(overlaps) > 0 {
		t.Errorf("listener ran twice at once for one message group: %v%s", overlaps, ctx)
	}
	if len(calls) != total {
		t.Errorf("%d listener calls, want %d%s", len(calls), total, ctx)
	}
	for _, c := range calls {
		if !strings.HasSuffix(c, "#1") {
			t.Errorf("delivery attempt > 1 without a failure: %s%s", c, ctx)
		}
	}
}

// ChangeInvisibleDuration: a received message made invisible for longer is not redelivered when
// its first invisible duration runs out, but after the new one, with delivery attempt 2.
func TestChangeInvisibleDurationPostponesRedelivery(t *testing.T) {
	t.Parallel()
	dumpOnFailure(t)
	p := newProducer(t, nil, topicInvisible)
	c := newSimpleConsumer(t, groupInvisible, topicInvisible)
	m := newMessage(topicInvisible, "invisible-1")
	m.SetTag("inv")
	m.SetKeys("inv-key")
	m.AddProperty("p", "v")
	id := send(t, p, m)
	first := receiveUntil(t, c, invisible, false, 20*time.Second, func(g []got) bool { return len(g) > 0 })
	if len(first) != 1 || first[0].m.GetMessageId() != id || first[0].m.GetDeliveryAttempt() != 1 {
		t.Fatalf("first delivery:%s", describeAll(first))
	}
	m1, t0 := first[0].m, first[0].at
	staleHandle := m1.GetReceiptHandle()
	time.Sleep(2 * time.Second)
	// invisible until ~t0 + 22 s instead of ~t0 + 10 s
	if err := c.ChangeInvisibleDuration(m1, 20*time.Second); err != nil {
		t.Fatalf("ChangeInvisibleDuration: %v", err)
	}
	changedAt := time.Now()
	if m1.GetReceiptHandle() == staleHandle {
		t.Errorf("ChangeInvisibleDuration left the receipt handle as it was")
	}
	if hidden := receiveFor(t, c, invisible, false, time.Until(t0.Add(17*time.Second))); len(hidden) > 0 {
		t.Fatalf("redelivered before the extended invisible duration ran out:%s", describeAll(hidden))
	}
	second := receiveUntil(t, c, invisible, false, 30*time.Second, func(g []got) bool { return len(g) > 0 })
	if len(second) != 1 {
		t.Fatalf("redelivery:%s", describeAll(second))
	}
	m2, t1 := second[0].m, second[0].at
	if m2.GetMessageId() != id || string(m2.GetBody()) != "invisible-1" || str(m2.GetTag()) != "inv" ||
		!reflect.DeepEqual(m2.GetKeys(), []string{"inv-key"}) || m2.GetProperties()["p"] != "v" {
		t.Errorf("redelivered as %s", describe(m2))
	}
	if m2.GetDeliveryAttempt() != 2 {
		t.Errorf("delivery attempt of the redelivery: %d, want 2", m2.GetDeliveryAttempt())
	}
	if t1.Before(changedAt.Add(19 * time.Second)) {
		t.Errorf("redelivered %v after the change to 20 s", t1.Sub(changedAt))
	}
	t.Logf("[invisible] changed at +%v, redelivered at +%v (%v after the change)", changedAt.Sub(t0).Round(time.Millisecond),
		t1.Sub(t0).Round(time.Millisecond), t1.Sub(changedAt).Round(time.Millisecond))
	// m1 now carries the handle that ChangeInvisibleDuration returned, expired since. Apache answers
	// INVALID_RECEIPT_HANDLE (the Java suite checks it), but the Go client's SimpleConsumer.Ack
	// returns nil whatever the status of the answer (v5.1.4), so nothing can be checked here.
	t.Logf("[invisible] ack with the expired receipt handle: err=%v", c.Ack(context.Background(), m1))
	if err := c.Ack(context.Background(), m2); err != nil {
		t.Fatalf("ack: %v", err)
	}
	if after := receiveFor(t, c, invisible, true, invisible+4*time.Second); len(after) > 0 {
		t.Errorf("redelivered after the ack:%s", describeAll(after))
	}
}

// A message never acked comes back after each invisible duration with the delivery attempt
// counting up until the group's retryMaxTimes (2) retries are spent (3 deliveries); then it is
// in %DLQ%group with its body, tag, keys and properties.
func TestUnackedMessageRetriedThenDeadLettered(t *testing.T) {
	t.Parallel()
	dumpOnFailure(t)
	maxAttempts := retryMaxTimes + 1
	p := newProducer(t, nil, topicDLQ)
	c := newSimpleConsumer(t, groupDLQ, topicDLQ)
	m := newMessage(topicDLQ, "doomed")
	m.SetTag("dlq")
	m.SetKeys("dlq-key")
	m.AddProperty("p", "v")
	id := send(t, p, m)
	start := time.Now()
	gs := receiveUntil(t, c, invisible, false, time.Duration(15*maxAttempts+10)*time.Second,
		func(g []got) bool { return len(g) > maxAttempts })
	var attempts []int32
	var at []int64
	for _, g := range gs {
		if g.m.GetMessageId() != id || string(g.m.GetBody()) != "doomed" {
			t.Errorf("unexpected %s", describe(g.m))
		}
		attempts = append(attempts, g.m.GetDeliveryAttempt())
		at = append(at, g.at.Sub(start).Milliseconds())
	}
	t.Logf("[dlq] delivery attempts %v at +ms %v", attempts, at)
	var want []int32
	for i := 1; i <= maxAttempts; i++ {
		want = append(want, int32(i))
	}
	if !reflect.DeepEqual(attempts, want) {
		t.Fatalf("delivery attempts %v, want %v:%s", attempts, want, describeAll(gs))
	}
	for i := 1; i < len(at); i++ {
		if at[i]-at[i-1] < invisible.Milliseconds()-1000 {
			t.Errorf("redelivered before the invisible duration ran out: +ms %v", at)
		}
	}
	dlqTopic := "%DLQ%" + groupDLQ
	dc := newSimpleConsumer(t, groupDLQReader, dlqTopic)
	dead := receiveUntil(t, dc, invisible, true, 20*time.Second, func(g []got) bool { return len(g) > 0 })
	dead = append(dead, receiveFor(t, dc, invisible, true, 2*time.Second)...)
	if len(dead) != 1 {
		t.Fatalf("in %s:%s", dlqTopic, describeAll(dead))
	}
	d := dead[0].m
	t.Logf("[dlq] dead letter: %s", describe(d))
	if string(d.GetBody()) != "doomed" || str(d.GetTag()) != "dlq" || !reflect.DeepEqual(d.GetKeys(), []string{"dlq-key"}) ||
		d.GetProperties()["p"] != "v" || d.GetTopic() != dlqTopic {
		t.Errorf("dead letter arrived as %s (topic %s)", describe(d), d.GetTopic())
	}
}

// PushConsumer on a normal topic: every message consumed once; the one whose listener returned
// FAILURE comes again with delivery attempt 2 and then succeeds.
func TestPushConsumerConsumesAllAndRedeliversFailure(t *testing.T) {
	t.Parallel()
	dumpOnFailure(t)
	const n = 20
	const failing = "push-7"
	var mu sync.Mutex
	attempts := map[string][]int32{}
	success := map[string]time.Time{}
	var failedAt time.Time
	var problems []string
	done := make(chan struct{})
	p := newProducer(t, nil, topicPush)
	newPushConsumer(t, groupPush, topicPush, func(m *rmq.MessageView) rmq.ConsumerResult {
		body := string(m.GetBody())
		i := strings.TrimPrefix(body, "push-")
		n2, _ := strconv.Atoi(i)
		mu.Lock()
		defer mu.Unlock()
		attempts[body] = append(attempts[body], m.GetDeliveryAttempt())
		if !slices.Contains(m.GetKeys(), "key-"+i) || str(m.GetTag()) != fmt.Sprintf("tag%d", n2%3) || m.GetProperties()["i"] != i {
			problems = append(problems, "fields of "+describe(m))
		}
		if body == failing && m.GetDeliveryAttempt() == 1 {
			failedAt = time.Now()
			return rmq.FAILURE
		}
		if _, dup := success[body]; dup {
			problems = append(problems, "consumed twice: "+describe(m))
			return rmq.SUCCESS
		}
		success[body] = time.Now()
		if len(success) == n {
			close(done)
		}
		return rmq.SUCCESS
	})
	for i := 0; i < n; i++ {
		m := newMessage(topicPush, fmt.Sprintf("push-%d", i))
		m.SetTag(fmt.Sprintf("tag%d", i%3))
		m.SetKeys(fmt.Sprintf("key-%d", i))
		m.AddProperty("i", strconv.Itoa(i))
		send(t, p, m)
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("consumed %d of %d within 60 s; attempts %v", len(success), n, attempts)
	}
	time.Sleep(3 * time.Second) // a duplicate or a further redelivery would show up now
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Errorf("%v", problems)
	}
	for i := 0; i < n; i++ {
		body := fmt.Sprintf("push-%d", i)
		want := []int32{1}
		if body == failing {
			want = []int32{1, 2}
		}
		if !reflect.DeepEqual(attempts[body], want) {
			t.Errorf("delivery attempts of %s: %v, want %v", body, attempts[body], want)
		}
	}
	t.Logf("[push] failed message redelivered %v after the FAILURE", success[failing].Sub(failedAt).Round(time.Millisecond))
}
