package interop

import (
	"context"
	"encoding/json"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// TestMessageLifeFollowsARetry: the official Go client, tracing off. Its consumer asks for
// a retry of the first delivery (delay level 1) and takes the second. `ferromq admin
// messageLife` shows both copies from the broker's records: the original pulled by the
// consumer's address and passed by its commit, the %RETRY% copy with reconsume count 1
// pulled and consumed too.
func TestMessageLifeFollowsARetry(t *testing.T) {
	b := startBroker(t, brokerOpts{})
	topic := uniq(t, "Life")
	group := uniq(t, "life-consumer")
	p, err := rocketmq.NewProducer(producer.WithNameServer([]string{b.NamesrvAdr}), producer.WithGroupName(uniq(t, "life-producer")))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown()
	res, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte("twice")))
	if err != nil || res.Status != primitive.SendOK {
		t.Fatalf("send: %v %v", res, err)
	}

	var deliveries atomic.Int32
	c, err := rocketmq.NewPushConsumer(consumer.WithNameServer([]string{b.NamesrvAdr}), consumer.WithGroupName(group),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Subscribe(topic, consumer.MessageSelector{}, func(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		if deliveries.Add(1) == 1 {
			if cc, ok := primitive.GetConcurrentlyCtx(ctx); ok {
				cc.DelayLevelWhenNextConsume = 1 // one second, not the default ten
			}
			return consumer.ConsumeRetryLater, nil
		}
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()

	type read struct {
		Client string `json:"client"`
	}
	type cp struct {
		Kind           string `json:"kind"`
		Topic          string `json:"topic"`
		ReconsumeTimes int    `json:"reconsumeTimes"`
		Consumed       bool   `json:"consumed"`
		Reads          []read `json:"reads"`
		CommittedBy    *read  `json:"committedBy"`
	}
	type life struct {
		Stored []json.RawMessage `json:"stored"`
		Groups []struct {
			Group  string `json:"group"`
			Copies []cp   `json:"copies"`
		} `json:"groups"`
	}
	var last string
	var copies []cp
	// The client commits offsets every 5 s: wait for both copies to be consumed (bounded).
	ok := waitFor(60*time.Second, func() bool {
		out, err := exec.Command(ferromqBin(t), "admin", "messageLife", "-n", b.NamesrvAdr, "-t", topic, "-i", res.MsgID,
			"--json", "--log-level", "error").CombinedOutput()
		last = string(out)
		var lives []life
		if err != nil || json.Unmarshal(out, &lives) != nil || len(lives) != 1 || len(lives[0].Stored) != 1 {
			return false
		}
		for _, g := range lives[0].Groups {
			if g.Group == group {
				copies = g.Copies
			}
		}
		return len(copies) == 2 && copies[0].Consumed && copies[1].Consumed
	})
	if !ok {
		t.Fatalf("the original and its retry, both consumed, not shown; last answer:\n%s", last)
	}
	if deliveries.Load() < 2 {
		t.Fatalf("deliveries: %d", deliveries.Load())
	}
	orig, retry := copies[0], copies[1]
	if orig.Kind != "original" || orig.Topic != topic || len(orig.Reads) == 0 || orig.CommittedBy == nil {
		t.Fatalf("original: %+v\n%s", orig, last)
	}
	if retry.Kind != "retry" || retry.Topic != "%RETRY%"+group || retry.ReconsumeTimes != 1 || len(retry.Reads) == 0 {
		t.Fatalf("retry: %+v\n%s", retry, last)
	}
	// The same consumer connection pulled both.
	if orig.Reads[0].Client != retry.Reads[0].Client || orig.CommittedBy.Client != orig.Reads[0].Client {
		t.Fatalf("readers differ: %+v %+v", orig, retry)
	}
}
