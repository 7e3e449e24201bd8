package interop

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// replyTo builds the reply to a request message. The Go client's own
// consumer.CreateReplyMessage drops the body (it parses it as properties), so the body is
// set again afterwards.
func replyTo(t *testing.T, request *primitive.MessageExt, body string) *primitive.Message {
	t.Helper()
	reply, err := consumer.CreateReplyMessage(request, nil)
	if err != nil {
		t.Errorf("CreateReplyMessage: %v", err)
		return nil
	}
	reply.Body = []byte(body)
	return reply
}

// startReplier answers every request on topic with "re:" + its body, through its own
// producer (SEND_REPLY_MESSAGE), and records the replies' send errors.
func startReplier(t *testing.T, ns, topic string, replyErrs chan<- error) {
	t.Helper()
	replier := newProducer(t, ns)
	c, err := rocketmq.NewPushConsumer(consumer.WithNameServer([]string{ns}), consumer.WithGroupName(uniq(t, "CG")),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Subscribe(topic, consumer.MessageSelector{}, func(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		for _, m := range msgs {
			if consumer.GetReplyToClient(m) == "" {
				continue // not a request: the message that created the topic
			}
			reply := replyTo(t, m, "re:"+string(m.Body))
			if reply == nil {
				continue
			}
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := replier.SendSync(sctx, reply)
			cancel()
			select {
			case replyErrs <- err:
			default:
			}
		}
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Shutdown() })
}

// The official Go client's Request and RequestAsync: the consumer's reply (code 324) is
// pushed back to the requester (326) and stored in DefaultCluster_REPLY_TOPIC. The requester
// is answered at once, before its first heartbeat reaches the broker (Apache finds it only
// by heartbeat: a new requester's first requests time out there).
func TestRequestReplySyncAndAsync(t *testing.T) {
	b := startBroker(t, brokerOpts{})
	topic := uniq(t, "req")
	requester := newProducer(t, b.NamesrvAdr)
	sendSyncN(t, requester, topic, []string{"create the topic"})
	replyErrs := make(chan error, 16)
	startReplier(t, b.NamesrvAdr, topic, replyErrs)

	for i, body := range []string{"ping-1", "ping-2"} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		reply, err := requester.Request(ctx, 20*time.Second, primitive.NewMessage(topic, []byte(body)))
		cancel()
		if err != nil {
			t.Fatalf("Request #%d: %v\nbroker output:\n%s", i, err, tail(b.Output(), 30))
		}
		if got := string(reply.Body); got != "re:"+body {
			t.Fatalf("Request #%d: reply body %q, want %q", i, got, "re:"+body)
		}
		if reply.GetProperty(primitive.PropertyCorrelationID) == "" {
			t.Errorf("Request #%d: the reply has no CORRELATION_ID", i)
		}
	}

	type answer struct {
		msg *primitive.Message
		err error
	}
	done := make(chan answer, 1)
	err := requester.RequestAsync(context.Background(), 20*time.Second, func(ctx context.Context, msg *primitive.Message, err error) {
		done <- answer{msg, err}
	}, primitive.NewMessage(topic, []byte("ping-async")))
	if err != nil {
		t.Fatalf("RequestAsync: %v", err)
	}
	select {
	case a := <-done:
		if a.err != nil {
			t.Fatalf("RequestAsync callback: %v", a.err)
		}
		if got := string(a.msg.Body); got != "re:ping-async" {
			t.Fatalf("RequestAsync: reply body %q", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("RequestAsync: the callback was never called")
	}
	for n := 0; n < 3; n++ {
		if err := <-replyErrs; err != nil {
			t.Errorf("a reply's SendSync failed: %v", err)
		}
	}

	// Every reply is also stored in the cluster's reply topic.
	got := newCollector()
	_, stop := startPushConsumer(t, b.NamesrvAdr, "DefaultCluster_REPLY_TOPIC", got,
		consumerOpts{from: consumer.ConsumeFromFirstOffset})
	defer stop()
	if want := []string{"re:ping-1", "re:ping-2", "re:ping-async"}; !got.waitAll(want, deliveryTimeout) {
		t.Fatalf("replies in DefaultCluster_REPLY_TOPIC: %v, want %v", got.snapshot(), want)
	}
}

// A reply whose requester is gone is refused with a reason, and a request whose reply never
// comes times out at the requester as it does against Apache.
func TestReplyToAGoneRequesterIsRefused(t *testing.T) {
	b := startBroker(t, brokerOpts{})
	replier := newProducer(t, b.NamesrvAdr)
	reply := primitive.NewMessage("DefaultCluster_REPLY_TOPIC", []byte("too late"))
	reply.WithProperty(primitive.PropertyMsgType, "reply")
	reply.WithProperty(primitive.PropertyCorrelationID, "c-1")
	reply.WithProperty(primitive.PropertyMessageReplyToClient, "127.0.0.1@gone")
	reply.WithProperty(primitive.PropertyMessageTTL, "3000")
	_, err := trySend(replier, reply)
	if err == nil || !strings.Contains(err.Error(), "channel of <127.0.0.1@gone> not found") {
		t.Fatalf("a reply to a gone requester: err %v, want one naming the missing channel", err)
	}

	topic := uniq(t, "unanswered")
	requester := newProducer(t, b.NamesrvAdr)
	sendSyncN(t, requester, topic, []string{"create the topic"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = requester.Request(ctx, 2*time.Second, primitive.NewMessage(topic, []byte("nobody answers")))
	if err == nil {
		t.Fatal("a request nobody answers returned a reply")
	}
}
