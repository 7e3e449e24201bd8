package interop

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// retryRecorder records every delivery of the test messages (not warm-ups)
// and answers with result(body, deliveryIndex).
type retryRecorder struct {
	mu     sync.Mutex
	prefix string
	got    map[string][]retryDelivery
	result func(body string, n int) consumer.ConsumeResult
}

type retryDelivery struct {
	at  time.Time
	msg *primitive.MessageExt
}

func newRetryRecorder(prefix string, result func(body string, n int) consumer.ConsumeResult) *retryRecorder {
	return &retryRecorder{prefix: prefix, got: map[string][]retryDelivery{}, result: result}
}

func (r *retryRecorder) handle(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
	now := time.Now()
	res := consumer.ConsumeSuccess
	for _, m := range msgs {
		body := string(m.Body)
		if !strings.HasPrefix(body, r.prefix) {
			continue
		}
		r.mu.Lock()
		r.got[body] = append(r.got[body], retryDelivery{at: now, msg: m})
		n := len(r.got[body])
		r.mu.Unlock()
		if x := r.result(body, n); x != consumer.ConsumeSuccess {
			res = x
		}
	}
	return res, nil
}

func (r *retryRecorder) deliveries(body string) []retryDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]retryDelivery(nil), r.got[body]...)
}

// TestRetryLater: a concurrent consumer returns ConsumeRetryLater on the
// first delivery. v2.1.2 sends CONSUMER_SEND_MSG_BACK (36, delayLevel 0,
// maxReconsumeTimes 16); the broker must schedule it on %RETRY%<group> at
// delay level 3 + reconsumeTimes = level 3 (10 s with the default table). The
// message comes back 8-20 s later with ReconsumeTimes 1, the same body and
// msgId (UNIQ_KEY), its original topic (restored by the client from
// RETRY_TOPIC), and is not delivered a third time once it succeeds.
func TestRetryLater(t *testing.T) {
	t.Parallel()
	captureClientLog(t)
	b := startBroker(t, brokerOpts{})
	topic := uniq(t, "T")
	group := uniq(t, "CG")
	p := newProducer(t, b.NamesrvAdr)
	warm := "warmup-" + nonce()
	sendSyncN(t, p, topic, []string{warm})
	primeRetryTopic(t, b, topic, group)

	prefix := "retry-" + nonce()
	rec := newRetryRecorder(prefix, func(_ string, n int) consumer.ConsumeResult {
		if n == 1 {
			return consumer.ConsumeRetryLater
		}
		return consumer.ConsumeSuccess
	})
	startConsumer(t, b.NamesrvAdr, topic, consumer.MessageSelector{}, rec.handle,
		consumerOpts{group: group, from: consumer.ConsumeFromFirstOffset})
	time.Sleep(2 * time.Second) // queues (topic and retry topic) assigned

	body := prefix + "-0"
	r := sendMsg(t, p, primitive.NewMessage(topic, []byte(body)))
	if !waitFor(40*time.Second, func() bool { return len(rec.deliveries(body)) >= 2 }) {
		ds := rec.deliveries(body)
		t.Fatalf("message delivered %d time(s) within 40s; after ConsumeRetryLater it must come back from %%RETRY%%%s "+
			"(CONSUMER_SEND_MSG_BACK → delay level 3 → retry topic)", len(ds), group)
	}
	time.Sleep(3 * time.Second) // a third delivery would show up now
	ds := rec.deliveries(body)
	first, again := ds[0], ds[1]
	gap := again.at.Sub(first.at)
	t.Logf("first delivery ReconsumeTimes=%d; redelivery %v later: topic %q ReconsumeTimes=%d msgId %s storeTimestamp-first=%v queue %v",
		first.msg.ReconsumeTimes, gap.Round(time.Millisecond), again.msg.Topic, again.msg.ReconsumeTimes, again.msg.MsgId,
		time.UnixMilli(again.msg.StoreTimestamp).Sub(first.at).Round(time.Millisecond), again.msg.Queue)
	if first.msg.ReconsumeTimes != 0 {
		t.Errorf("first delivery has ReconsumeTimes %d, want 0", first.msg.ReconsumeTimes)
	}
	if again.msg.ReconsumeTimes != 1 {
		t.Errorf("redelivery has ReconsumeTimes %d, want 1", again.msg.ReconsumeTimes)
	}
	if gap < 8*time.Second || gap > 20*time.Second {
		t.Errorf("redelivery came %v after the failed delivery, want 8s..20s (delay level 3 = 10s)", gap.Round(time.Millisecond))
	}
	if string(again.msg.Body) != body || again.msg.MsgId != r.MsgID {
		t.Errorf("redelivery body %q msgId %s, want %q and the original UNIQ_KEY %s", again.msg.Body, again.msg.MsgId, body, r.MsgID)
	}
	if again.msg.Topic != topic {
		t.Errorf("redelivery topic %q, want %q (the client maps %%RETRY%% messages back via the RETRY_TOPIC property the broker must set)",
			again.msg.Topic, topic)
	}
	if again.msg.Queue == nil || again.msg.Queue.Topic != "%RETRY%"+group {
		t.Errorf("redelivery was pulled from %v, want a queue of %%RETRY%%%s", again.msg.Queue, group)
	}
	if len(ds) != 2 {
		t.Errorf("message delivered %d times, want 2 (it succeeded on the second)", len(ds))
	}

	// Properties of the redelivery, as Apache stores them
	// (SendMessageProcessor.consumerSendMsgBack, then the schedule service):
	//   - RETRY_TOPIC = the original topic;
	//   - ORIGIN_MESSAGE_ID = the first delivery's offset message id: Apache
	//     writes the id of the message it looked up by commit-log offset
	//     (MessageExt.OffsetMsgId) and ignores the originMsgId the v2.1.2
	//     client sends in CONSUMER_SEND_MSG_BACK (its MsgId, the UNIQ_KEY);
	//   - DELAY = "3": the client sends delayLevel 0, and the broker turns a
	//     first retry into level 3 + reconsumeTimes 0. The property stays on
	//     the message delivered from %RETRY% (Apache's messageTimeup keeps the
	//     stored properties string).
	origin := again.msg.GetProperty("ORIGIN_MESSAGE_ID")
	t.Logf("redelivery properties: RETRY_TOPIC=%q ORIGIN_MESSAGE_ID=%q (first delivery MsgId %s OffsetMsgId %s) DELAY=%q REAL_TOPIC=%q REAL_QID=%q",
		again.msg.GetProperty("RETRY_TOPIC"), origin, first.msg.MsgId, first.msg.OffsetMsgId,
		again.msg.GetProperty("DELAY"), again.msg.GetProperty("REAL_TOPIC"), again.msg.GetProperty("REAL_QID"))
	if got := again.msg.GetProperty("RETRY_TOPIC"); got != topic {
		t.Errorf("redelivery has RETRY_TOPIC=%q, want the original topic %q; properties: %v", got, topic, again.msg.GetProperties())
	}
	if origin != first.msg.OffsetMsgId {
		t.Errorf("redelivery has ORIGIN_MESSAGE_ID=%q, want the first delivery's OffsetMsgId %s, as Apache; properties: %v",
			origin, first.msg.OffsetMsgId, again.msg.GetProperties())
	}
	if got := again.msg.GetProperty("DELAY"); got != "3" {
		t.Errorf("redelivery has DELAY=%q, want \"3\" (first retry: delay level 3 + reconsumeTimes 0); properties: %v",
			got, again.msg.GetProperties())
	}
}

// TestRetryDLQ: with every delay level set to 1 s and
// WithMaxReconsumeTimes(2), a message whose handler always fails is
// delivered 3 times (ReconsumeTimes 0, 1, 2), then the broker moves it to
// %DLQ%<group> (reconsumeTimes >= maxReconsumeTimes) and it is not delivered
// to the failing group again. A consumer of another group subscribed to the
// DLQ topic receives it with the same body and msgId.
func TestRetryDLQ(t *testing.T) {
	t.Parallel()
	captureClientLog(t)
	conf := "messageDelayLevel=1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s\n"
	b := startBroker(t, brokerOpts{conf: conf})
	topic := uniq(t, "T")
	group := uniq(t, "CG")
	p := newProducer(t, b.NamesrvAdr)
	sendSyncN(t, p, topic, []string{"warmup-" + nonce()})
	primeRetryTopic(t, b, topic, group)

	const maxReconsume = 2
	prefix := "dlq-" + nonce()
	rec := newRetryRecorder(prefix, func(string, int) consumer.ConsumeResult { return consumer.ConsumeRetryLater })
	startConsumer(t, b.NamesrvAdr, topic, consumer.MessageSelector{}, rec.handle, consumerOpts{
		group: group, from: consumer.ConsumeFromFirstOffset,
		extra: []consumer.Option{consumer.WithMaxReconsumeTimes(maxReconsume)},
	})
	time.Sleep(2 * time.Second)

	bodies := []string{prefix + "-0", prefix + "-1"}
	ids := map[string]string{}
	for _, body := range bodies {
		ids[body] = sendMsg(t, p, primitive.NewMessage(topic, []byte(body))).MsgID
	}
	want := maxReconsume + 1
	if !waitFor(60*time.Second, func() bool {
		for _, body := range bodies {
			if len(rec.deliveries(body)) < want {
				return false
			}
		}
		return true
	}) {
		for _, body := range bodies {
			t.Errorf("%s delivered %d times within 60s, want %d (1 s retry delays)", body, len(rec.deliveries(body)), want)
		}
	}
	time.Sleep(5 * time.Second) // a further retry (1 s delay) would arrive now
	for _, body := range bodies {
		ds := rec.deliveries(body)
		var rt []int32
		for _, d := range ds {
			rt = append(rt, d.msg.ReconsumeTimes)
		}
		t.Logf("%s: %d deliveries, ReconsumeTimes %v", body, len(ds), rt)
		if len(ds) != want {
			t.Errorf("%s delivered %d times to the failing group, want exactly maxReconsumeTimes+1 = %d "+
				"(after the %dth failure the broker must put it in %%DLQ%%%s instead of retrying)", body, len(ds), want, want, group)
		}
		for i, d := range ds {
			if i < want && d.msg.ReconsumeTimes != int32(i) {
				t.Errorf("%s delivery %d has ReconsumeTimes %d, want %d", body, i+1, d.msg.ReconsumeTimes, i)
			}
		}
	}

	// The dead letters, read by another group.
	dlq := "%DLQ%" + group
	dc := newCollector()
	_, _, err := tryStartConsumer(t, b.NamesrvAdr, dlq, consumer.MessageSelector{}, dc.handle,
		consumerOpts{from: consumer.ConsumeFromFirstOffset})
	if err != nil {
		t.Fatalf("cannot consume %s (the broker must create the DLQ topic, readable, and register its route): %v", dlq, err)
	}
	if !dc.waitAll(bodies, deliveryTimeout) {
		t.Errorf("a consumer of %s did not receive the dead letters within %v: %s", dlq, deliveryTimeout, compare(bodies, dc.snapshot()))
	}
	time.Sleep(1 * time.Second)
	expectExactly(t, "DLQ consumer", bodies, dc.snapshot())
	for _, body := range bodies {
		if m := dc.firstMsg(body); m != nil {
			t.Logf("dead letter %s: topic %s ReconsumeTimes %d msgId %s", body, m.Topic, m.ReconsumeTimes, m.MsgId)
			if m.MsgId != ids[body] {
				t.Errorf("dead letter %s has msgId %s, want the original UNIQ_KEY %s", body, m.MsgId, ids[body])
			}
			if m.Queue == nil || m.Queue.Topic != dlq {
				t.Errorf("dead letter %s pulled from %v, want topic %s", body, m.Queue, dlq)
			}
		}
	}
}
