package v5interop

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
)

// Normal messages: sync and async send, SimpleConsumer receive + ack; nothing comes back after
// the invisible duration.
func TestNormalSendSyncAsyncThenSimpleConsumerAcksAll(t *testing.T) {
	t.Parallel()
	dumpOnFailure(t)
	p := newProducer(t, nil, topicNormal)
	c := newSimpleConsumer(t, groupNormal, topicNormal)
	const n = 16
	before := time.Now()
	idToIndex := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		m := newMessage(topicNormal, fmt.Sprintf("normal-%d", i))
		m.SetTag(map[bool]string{true: "TagA", false: "TagB"}[i%2 == 0])
		m.SetKeys(fmt.Sprintf("key-%d", i), fmt.Sprintf("alt-%d", i))
		m.AddProperty("seq", strconv.Itoa(i))
		mode := "sync"
		if i >= n/2 {
			mode = "async"
		}
		m.AddProperty("mode", mode)
		if mode == "sync" {
			idToIndex[send(t, p, m)] = i
			continue
		}
		wg.Add(1)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		p.SendAsync(ctx, m, func(_ context.Context, r []*rmq.SendReceipt, err error) {
			defer wg.Done()
			defer cancel()
			if err != nil || len(r) != 1 {
				t.Errorf("async send %d: %v %v", i, r, err)
				return
			}
			mu.Lock()
			idToIndex[r[0].MessageID] = i
			mu.Unlock()
		})
	}
	waitGroup(t, &wg, 20*time.Second, "async send callbacks")
	if len(idToIndex) != n {
		t.Fatalf("%d distinct message ids from the send receipts, want %d", len(idToIndex), n)
	}

	gs := receiveUntil(t, c, invisible, true, 30*time.Second, func(g []got) bool { return len(g) >= n })
	if len(gs) != n {
		t.Fatalf("received %d, want %d:%s", len(gs), n, describeAll(gs))
	}
	seen := map[string]bool{}
	for _, g := range gs {
		m := g.m
		if seen[m.GetMessageId()] {
			t.Errorf("duplicate %s", describe(m))
		}
		seen[m.GetMessageId()] = true
		i, ok := idToIndex[m.GetMessageId()]
		if !ok {
			t.Errorf("message id not among the send receipts: %s", describe(m))
			continue
		}
		wantTag := map[bool]string{true: "TagA", false: "TagB"}[i%2 == 0]
		wantMode := map[bool]string{true: "sync", false: "async"}[i < n/2]
		keys := slices.Sorted(slices.Values(m.GetKeys()))
		switch {
		case m.GetTopic() != topicNormal,
			string(m.GetBody()) != fmt.Sprintf("normal-%d", i),
			str(m.GetTag()) != wantTag,
			!reflect.DeepEqual(keys, []string{fmt.Sprintf("alt-%d", i), fmt.Sprintf("key-%d", i)}),
			m.GetProperties()["seq"] != strconv.Itoa(i),
			m.GetProperties()["mode"] != wantMode,
			str(m.GetMessageGroup()) != "",
			m.GetDeliveryTimestamp() != nil,
			m.GetDeliveryAttempt() != 1,
			str(m.GetBornHost()) == "":
			t.Errorf("message %d arrived as %s (born host %q, delivery timestamp %v)", i, describe(m),
				str(m.GetBornHost()), m.GetDeliveryTimestamp())
		}
		if bt := m.GetBornTimestamp(); bt == nil || bt.Before(before.Add(-time.Second)) || bt.After(g.at.Add(time.Second)) {
			t.Errorf("born timestamp %v of %s outside [%v, %v]", bt, describe(m), before, g.at)
		}
	}
	more := receiveFor(t, c, invisible, true, invisible+5*time.Second)
	if len(more) > 0 {
		t.Errorf("redelivered after ack:%s", describeAll(more))
	}
}

func waitGroup(t *testing.T, wg *sync.WaitGroup, d time.Duration, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not finish within %v", what, d)
	}
}

// Delay messages: a delivery timestamp ~3 s ahead holds each message back until then.
func TestDelayDeliveryTimestamp(t *testing.T) {
	t.Parallel()
	dumpOnFailure(t)
	// Apache's timer wheel ticks every second: a message may come up to a tick early.
	const earlyTolerance = time.Second
	p := newProducer(t, nil, topicDelay)
	c := newSimpleConsumer(t, groupDelay, topicDelay)
	receiveFor(t, c, invisible, true, time.Second) // polling from before the send
	due := map[string]time.Time{}
	for i := 0; i < 3; i++ {
		ts := time.Now().Add(3*time.Second + time.Duration(i)*time.Second).Truncate(time.Millisecond)
		body := fmt.Sprintf("delay-%d", i)
		m := newMessage(topicDelay, body)
		m.SetTag("later")
		m.SetKeys(body)
		m.SetDelayTimestamp(ts)
		send(t, p, m)
		due[body] = ts
	}
	gs := receiveUntil(t, c, invisible, true, 30*time.Second, func(g []got) bool { return len(g) >= len(due) })
	if len(gs) != len(due) {
		t.Fatalf("received %d, want %d:%s", len(gs), len(due), describeAll(gs))
	}
	var lateness []string
	for _, g := range gs {
		body := string(g.m.GetBody())
		ts, ok := due[body]
		if !ok {
			t.Errorf("unexpected %s", describe(g.m))
			continue
		}
		if dt := g.m.GetDeliveryTimestamp(); dt == nil || !dt.Equal(ts) {
			t.Errorf("%s: delivery timestamp %v, want %v", body, dt, ts)
		}
		if g.at.Before(ts.Add(-earlyTolerance)) {
			t.Errorf("%s received %v before its delivery time", body, ts.Sub(g.at))
		}
		if g.at.After(ts.Add(15 * time.Second)) {
			t.Errorf("%s received %v after its delivery time", body, g.at.Sub(ts))
		}
		if str(g.m.GetTag()) != "later" || g.m.GetDeliveryAttempt() != 1 {
			t.Errorf("%s", describe(g.m))
		}
		lateness = append(lateness, fmt.Sprintf("%s=%dms", body, g.at.Sub(ts).Milliseconds()))
	}
	t.Logf("[delay] lateness: %v", lateness)
}

// RecallMessage (Apache 5.3.1): a delayed message withdrawn by the recall handle its send
// returned is never delivered; the other, sent beside it, is.
func TestRecallDelayedMessage(t *testing.T) {
	t.Parallel()
	dumpOnFailure(t)
	p := newProducer(t, nil, topicRecall)
	c := newSimpleConsumer(t, groupRecall, topicRecall)
	due := time.Now().Add(4 * time.Second).Truncate(time.Millisecond)
	handles := map[string]string{}
	for _, body := range []string{"recalled", "kept"} {
		m := newMessage(topicRecall, body)
		m.SetDelayTimestamp(due)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		r, err := p.Send(ctx, m)
		cancel()
		if err != nil || len(r) != 1 {
			t.Fatalf("send %s: %v %+v", body, err, r)
		}
		if r[0].RecallHandle == "" {
			t.Fatalf("the send of a delayed message returned no recall handle: %+v", r[0])
		}
		handles[body] = r[0].RecallHandle
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	id, err := p.Recall(ctx, topicRecall, handles["recalled"])
	cancel()
	if err != nil || id == "" {
		t.Fatalf("recall: id %q, %v", id, err)
	}
	gs := receiveUntil(t, c, invisible, true, 15*time.Second, func(g []got) bool { return len(g) >= 2 })
	var bodies []string
	for _, g := range gs {
		bodies = append(bodies, string(g.m.GetBody()))
	}
	if len(bodies) != 1 || bodies[0] != "kept" {
		t.Fatalf("delivered %v, want only [kept] (the recalled message must not come)", bodies)
	}
}

// Transactional messages: one committed, one rolled back, one left open that the check-back
// resolves through the TransactionChecker (COMMIT). Exactly the committed two are consumed.
func TestTransactionCommitRollbackCheckBack(t *testing.T) {
	t.Parallel()
	dumpOnFailure(t)
	var mu sync.Mutex
	var checked []string
	p := newProducer(t, &rmq.TransactionChecker{Check: func(m *rmq.MessageView) rmq.TransactionResolution {
		mu.Lock()
		checked = append(checked, fmt.Sprintf("%s#%v", m.GetBody(), m.GetKeys()))
		mu.Unlock()
		if string(m.GetBody()) == "tx-unknown" {
			return rmq.COMMIT
		}
		return rmq.ROLLBACK
	}}, topicTx)
	c := newSimpleConsumer(t, groupTx, topicTx)
	ids := map[string]string{}
	for _, what := range []string{"commit", "rollback", "unknown"} {
		tx := p.BeginTransaction()
		m := newMessage(topicTx, "tx-"+what)
		m.SetTag("tx")
		m.SetKeys("key-" + what)
		m.AddProperty("outcome", what)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		r, err := p.SendWithTransaction(ctx, m, tx)
		cancel()
		if err != nil || len(r) != 1 {
			t.Fatalf("send %s: %v %v", what, r, err)
		}
		ids[what] = r[0].MessageID
		switch what {
		case "commit":
			err = tx.Commit()
		case "rollback":
			err = tx.RollBack()
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	start := time.Now()
	// Apache's default check-back (every 30 s, for halves older than 6 s) takes up to ~40 s
	// (apache-local.sh: every 2 s); leave room for a server with the defaults.
	gs := receiveUntil(t, c, invisible, true, 100*time.Second, func(g []got) bool { return len(g) >= 2 })
	resolvedAfter := time.Since(start)
	gs = append(gs, receiveFor(t, c, invisible, true, 4*time.Second)...)
	mu.Lock()
	calls := slices.Clone(checked)
	mu.Unlock()
	if b := bodies(gs); !reflect.DeepEqual(b, []string{"tx-commit", "tx-unknown"}) {
		t.Fatalf("consumed %v, want [tx-commit tx-unknown] (each once):%s\nchecker calls: %v", b, describeAll(gs), calls)
	}
	for _, g := range gs {
		what := string(g.m.GetBody())[3:]
		if g.m.GetMessageId() != ids[what] || str(g.m.GetTag()) != "tx" ||
			!reflect.DeepEqual(g.m.GetKeys(), []string{"key-" + what}) || g.m.GetProperties()["outcome"] != what {
			t.Errorf("arrived as %s (sent with id %s)", describe(g.m), ids[what])
		}
	}
	if len(calls) == 0 {
		t.Errorf("the checker was never asked")
	}
	for _, c := range calls {
		if c != "tx-unknown#[key-unknown]" {
			t.Errorf("only the open transaction is checked, with its body and keys; calls: %v", calls)
			break
		}
	}
	t.Logf("[tx] consumed within %v; checker calls %v", resolvedAfter.Round(time.Millisecond), calls)
}

// TLS (the client's default) and plaintext on the same gRPC port: a producer and a consumer
// each way. rmq.EnableSsl is package-wide, so this test does not run in parallel with others.
func TestTLSAndPlaintext(t *testing.T) {
	dumpOnFailure(t)
	saved := rmq.EnableSsl
	t.Cleanup(func() { rmq.EnableSsl = saved })
	for _, tls := range []bool{true, false} {
		mode := map[bool]string{true: "tls", false: "plaintext"}[tls]
		t.Run(mode, func(t *testing.T) {
			rmq.EnableSsl = tls
			p := newProducer(t, nil, topicTLS)
			c := newSimpleConsumer(t, groupTLS, topicTLS)
			var want []string
			for i := 0; i < 3; i++ {
				body := fmt.Sprintf("%s-%d", mode, i)
				m := newMessage(topicTLS, body)
				m.SetTag(mode)
				m.SetKeys(body)
				send(t, p, m)
				want = append(want, body)
			}
			gs := receiveUntil(t, c, invisible, true, 20*time.Second, func(g []got) bool { return len(g) >= len(want) })
			if b := bodies(gs); !reflect.DeepEqual(b, want) {
				t.Fatalf("over %s received %v, want %v:%s", mode, b, want, describeAll(gs))
			}
			// The subtest's cleanups stop both clients before the next mode is set.
		})
	}
}
