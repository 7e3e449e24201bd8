package testbroker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"
)

// An application test as a user writes one: its own broker, the official Go client, the
// messages it sent received by its consumer.
func TestOrdersReachTheirConsumer(t *testing.T) {
	rlog.SetLogLevel("error")
	b := Start(t)

	p, err := rocketmq.NewProducer(producer.WithNameServer([]string{b.NameServer}), producer.WithRetry(2))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Shutdown() }()
	const orders = 10
	for i := 0; i < orders; i++ {
		res, err := p.SendSync(context.Background(), primitive.NewMessage("orders", []byte(fmt.Sprintf("order-%d", i))))
		if err != nil || res.Status != primitive.SendOK {
			t.Fatalf("send %d: %v %v", i, res, err)
		}
	}

	got := make(chan string, orders*2)
	c, err := rocketmq.NewPushConsumer(consumer.WithNameServer([]string{b.NameServer}),
		consumer.WithGroupName("billing"), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Subscribe("orders", consumer.MessageSelector{}, func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		for _, m := range msgs {
			got <- string(m.Body)
		}
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Shutdown() }()
	seen := map[string]bool{}
	deadline := time.After(60 * time.Second)
	for len(seen) < orders {
		select {
		case body := <-got:
			seen[body] = true
		case <-deadline:
			t.Fatalf("received %d of %d orders: %v", len(seen), orders, seen)
		}
	}
}

func TestTheReadyLineGivesEveryAddress(t *testing.T) {
	b, err := parseReady("FerroMQ is ready: name server 127.0.0.1:1, broker 127.0.0.1:2, gRPC 127.0.0.1:3")
	if err != nil || b.NameServer != "127.0.0.1:1" || b.Broker != "127.0.0.1:2" || b.GRPC != "127.0.0.1:3" {
		t.Fatalf("%+v %v", b, err)
	}
	if _, err := parseReady("FerroMQ is ready: dashboard http://127.0.0.1:8080"); err == nil {
		t.Fatal("a line without name server and broker was accepted")
	}
}
