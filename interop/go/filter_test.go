package interop

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// TestTagFilter: TagA/TagB/TagC messages; a push consumer subscribed with
// TAG "TagA || TagB" receives exactly the A and B ones.
//
// v2.1.2 re-filters pulled messages by exact tag on the client, so the push
// check alone would pass even if the broker did not filter. The broker-side
// filter is checked with the pull consumer: PullFrom sends the expression in
// the PULL_MESSAGE request (subscription flag), and the raw pull body, decoded
// before the client's re-filter, must contain no TagC message.
func TestTagFilter(t *testing.T) {
	captureClientLog(t)
	b := startBroker(t, brokerOpts{})
	topic := uniq(t, "T")
	p := newProducer(t, b.NamesrvAdr)

	n := nonce()
	var wantAB []string
	sent := map[string]*primitive.SendResult{}
	maxOff := map[int]int64{}
	var queues []*primitive.MessageQueue
	for i := 0; i < 30; i++ {
		tag := []string{"TagA", "TagB", "TagC"}[i%3]
		body := fmt.Sprintf("tag-%s-%s-%02d", n, tag, i)
		r := sendMsg(t, p, primitive.NewMessage(topic, []byte(body)).WithTag(tag))
		sent[body] = r
		if tag != "TagC" {
			wantAB = append(wantAB, body)
		}
		q := r.MessageQueue.QueueId
		if _, ok := maxOff[q]; !ok {
			queues = append(queues, r.MessageQueue)
		}
		if r.QueueOffset+1 > maxOff[q] {
			maxOff[q] = r.QueueOffset + 1
		}
	}

	c := newCollector()
	startConsumer(t, b.NamesrvAdr, topic, consumer.MessageSelector{Type: consumer.TAG, Expression: "TagA || TagB"}, c.handle,
		consumerOpts{from: consumer.ConsumeFromFirstOffset})
	if !c.waitAll(wantAB, deliveryTimeout) {
		t.Errorf("TagA||TagB consumer did not get all 20 A/B messages within %v", deliveryTimeout)
	}
	time.Sleep(2 * time.Second)
	expectExactly(t, "push consumer TagA || TagB", wantAB, c.snapshot())
	for body := range c.snapshot() {
		if m := c.firstMsg(body); m != nil && m.GetTags() != "TagA" && m.GetTags() != "TagB" {
			t.Errorf("%s delivered with tag %q", body, m.GetTags())
		}
	}

	// Broker-side filtering, seen through PullFrom's raw body.
	pc, _ := startPullConsumer(t, b.NamesrvAdr, topic, consumer.MessageSelector{Type: consumer.TAG, Expression: "TagA || TagB"},
		uniq(t, "PCG"), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	rawSeen := map[string]string{}
	for _, mq := range queues {
		off := int64(0)
		for i := 0; i < 20 && off < maxOff[mq.QueueId]; i++ {
			res, err := pc.PullFrom(context.Background(), mq, off, 32)
			if err != nil {
				t.Fatalf("PullFrom(queue %d, offset %d): %v", mq.QueueId, off, err)
			}
			for _, m := range primitive.DecodeMessage(res.GetBody()) {
				rawSeen[string(m.Body)] = m.GetTags()
			}
			if res.NextBeginOffset <= off {
				t.Fatalf("PullFrom(queue %d, offset %d): status %d nextBeginOffset %d does not advance", mq.QueueId, off, res.Status, res.NextBeginOffset)
			}
			off = res.NextBeginOffset
		}
	}
	var leaked []string
	for body, tag := range rawSeen {
		if tag != "TagA" && tag != "TagB" {
			leaked = append(leaked, body+"("+tag+")")
		}
	}
	if len(leaked) > 0 {
		t.Errorf("the broker returned %d messages not matching TagA || TagB in PULL_MESSAGE bodies (filtering left to the client): %s",
			len(leaked), abbrev(leaked))
	}
	for _, body := range wantAB {
		if _, ok := rawSeen[body]; !ok {
			t.Errorf("pull with TagA || TagB never returned %s", body)
		}
	}
}

// sqlCase is a message for the SQL92 tests: properties and whether
// "a > 5 AND b = 'x'" matches.
type sqlCase struct {
	props map[string]string
	match bool
}

var sqlCases = []sqlCase{
	{map[string]string{"a": "7", "b": "x"}, true},
	{map[string]string{"a": "10", "b": "x"}, true},
	{map[string]string{"a": "6", "b": "x"}, true},
	{map[string]string{"a": "3", "b": "x"}, false},
	{map[string]string{"a": "5", "b": "x"}, false},
	{map[string]string{"a": "7", "b": "y"}, false},
	{map[string]string{"b": "x"}, false}, // missing a
	{map[string]string{"a": "7"}, false}, // missing b
	{nil, false},                         // no properties
}

// sendSQLCases sends each case `copies` times; returns matching and all bodies.
func sendSQLCases(t *testing.T, topic, prefix string, p rocketmq.Producer, copies int) (match, all []string) {
	t.Helper()
	for c := 0; c < copies; c++ {
		for i, sc := range sqlCases {
			body := fmt.Sprintf("%s-case%d-copy%d", prefix, i, c)
			m := primitive.NewMessage(topic, []byte(body))
			for k, v := range sc.props {
				m.WithProperty(k, v)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			r, err := p.SendSync(ctx, m)
			cancel()
			if err != nil || r.Status != primitive.SendOK {
				t.Fatalf("send %s: %v %v", body, r, err)
			}
			all = append(all, body)
			if sc.match {
				match = append(match, body)
			}
		}
	}
	return match, all
}

const sqlExpr = "a > 5 AND b = 'x'"

// TestSQL92Filter: with enablePropertyFilter=true a push consumer subscribed
// with SQL92 "a > 5 AND b = 'x'" receives exactly the messages whose user
// properties match (v2.1.2 does not filter SQL92 on the client: the broker
// evaluates the expression registered by HEART_BEAT).
func TestSQL92Filter(t *testing.T) {
	captureClientLog(t)
	b := startBroker(t, brokerOpts{conf: "enablePropertyFilter=true\n"})
	topic := uniq(t, "T")
	p := newProducer(t, b.NamesrvAdr)
	match, all := sendSQLCases(t, topic, "sql-"+nonce(), p, 3)

	c := newCollector()
	startConsumer(t, b.NamesrvAdr, topic, consumer.MessageSelector{Type: consumer.SQL92, Expression: sqlExpr}, c.handle,
		consumerOpts{from: consumer.ConsumeFromFirstOffset})
	if !c.waitAll(match, deliveryTimeout) {
		t.Errorf("SQL92 consumer did not get all %d matching messages within %v", len(match), deliveryTimeout)
	}
	time.Sleep(3 * time.Second)
	expectExactly(t, "SQL92 "+sqlExpr, match, c.snapshot())

	// Control: a plain consumer sees all of them (the others were stored).
	all2 := newCollector()
	startPushConsumer(t, b.NamesrvAdr, topic, all2, consumerOpts{from: consumer.ConsumeFromFirstOffset})
	if !all2.waitAll(all, deliveryTimeout) {
		t.Errorf("an unfiltered consumer did not get all %d messages: %s", len(all), compare(all, all2.snapshot()))
	}
}

// TestSQL92Malformed: a consumer subscribing with the malformed SQL92
// expression "a > AND" receives nothing (v2.1.2 does not validate the
// expression; Start succeeds and the broker refuses or ignores the
// subscription: Apache answers its pulls with an error code, which v2.1.2
// logs and retries every 3 s), and the broker keeps serving: a consumer with
// a valid SQL92 expression on the same topic and a plain consumer on another
// topic still get their messages. A pull consumer's PullFrom with the
// malformed expression in the request returns an error or no message.
func TestSQL92Malformed(t *testing.T) {
	t.Parallel()
	clientLines := captureClientLog(t)
	b := startBroker(t, brokerOpts{conf: "enablePropertyFilter=true\n"})
	topic := uniq(t, "T")
	other := uniq(t, "T2")
	p := newProducer(t, b.NamesrvAdr)
	match, all := sendSQLCases(t, topic, "sqlbad-"+nonce(), p, 2)
	sendSyncN(t, p, other, []string{"warmup-" + nonce()})

	bad := newCollector()
	_, _, startErr := tryStartConsumer(t, b.NamesrvAdr, topic, consumer.MessageSelector{Type: consumer.SQL92, Expression: "a > AND"},
		bad.handle, consumerOpts{from: consumer.ConsumeFromFirstOffset})
	if startErr != nil {
		t.Logf("consumer with malformed SQL92 failed to start (acceptable): %v", startErr)
	} else {
		t.Logf("consumer with malformed SQL92 started (v2.1.2 does not validate expressions)")
	}

	good := newCollector()
	startConsumer(t, b.NamesrvAdr, topic, consumer.MessageSelector{Type: consumer.SQL92, Expression: sqlExpr}, good.handle,
		consumerOpts{from: consumer.ConsumeFromFirstOffset})
	plain := newCollector()
	plain.ignore = func(body string) bool { return strings.HasPrefix(body, "warmup-") }
	startPushConsumer(t, b.NamesrvAdr, other, plain, consumerOpts{from: consumer.ConsumeFromFirstOffset})

	if !good.waitAll(match, deliveryTimeout) {
		t.Errorf("valid SQL92 consumer on the same topic did not get its %d messages within %v (broker stopped serving?)", len(match), deliveryTimeout)
	}
	otherBodies := bodiesN("other-"+nonce(), 10)
	sendSyncN(t, p, other, otherBodies)
	if !plain.waitAll(otherBodies, deliveryTimeout) {
		t.Errorf("plain consumer on another topic did not get its messages within %v", deliveryTimeout)
	}
	time.Sleep(5 * time.Second) // the malformed consumer has had ~10 s of pulls by now
	if got := bad.snapshot(); len(got) > 0 {
		var list []string
		for body := range got {
			list = append(list, body)
		}
		t.Errorf("consumer with malformed SQL92 \"a > AND\" received %d of the %d messages: %s", len(got), len(all), abbrev(list))
	}
	expectExactly(t, "valid SQL92 consumer", match, good.snapshot())

	// Pull consumer: the expression travels in PULL_MESSAGE.
	if m := good.firstMsg(match[0]); m != nil && m.Queue != nil {
		pc, _ := startPullConsumer(t, b.NamesrvAdr, topic, consumer.MessageSelector{Type: consumer.SQL92, Expression: "a > AND"},
			uniq(t, "PCG"), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
		mq := &primitive.MessageQueue{Topic: topic, BrokerName: m.Queue.BrokerName, QueueId: m.Queue.QueueId}
		res, err := pc.PullFrom(context.Background(), mq, 0, 32)
		switch {
		case err != nil:
			t.Logf("PullFrom with malformed SQL92 (queue %d, offset 0): error %v", mq.QueueId, err)
		case len(primitive.DecodeMessage(res.GetBody())) > 0:
			t.Errorf("PullFrom with malformed SQL92 \"a > AND\" returned %d messages (status %d)", len(primitive.DecodeMessage(res.GetBody())), res.Status)
		default:
			t.Logf("PullFrom with malformed SQL92 (queue %d, offset 0): status %d, no messages, nextBeginOffset %d", mq.QueueId, res.Status, res.NextBeginOffset)
		}
	}
	// What v2.1.2 made of it (observation, not an assertion).
	var pullErrs, hbFails []string
	for _, ln := range strings.Split(clientLines(), "\n") {
		if strings.Contains(ln, b.BrokerAddr) && strings.Contains(ln, "pull message from broker error") {
			pullErrs = append(pullErrs, ln)
		}
		if strings.Contains(ln, b.BrokerAddr) && strings.Contains(ln, "send heart beat to broker failed") {
			hbFails = append(hbFails, ln)
		}
	}
	if len(hbFails) > 0 {
		t.Logf("client log: %d refused heartbeats from this broker, e.g.\n%s", len(hbFails), hbFails[0])
	}
	if len(pullErrs) > 0 {
		t.Logf("client log: %d failed pulls from this broker (v2.1.2 logs a non-pull response code and retries after 3 s), e.g.\n%s",
			len(pullErrs), pullErrs[0])
	} else {
		t.Logf("client log: no failed pulls from this broker (its pulls were answered with pull codes)")
	}
	if !routeExists(b.NamesrvAdr, other) {
		t.Errorf("name server no longer serves routes")
	}
}
