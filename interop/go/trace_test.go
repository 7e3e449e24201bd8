package interop

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// TestMessageTraceIsReadBack: the official Go client with tracing on (WithTrace) writes
// its send and its consumption to RMQ_SYS_TRACE_TOPIC (the broker creates it with
// traceTopicEnable=true), and `ferromq admin queryMsgTraceById` reads both back for the
// message: the producer group, a successful send with its store host, and the consumer
// group's successful consumption.
func TestMessageTraceIsReadBack(t *testing.T) {
	b := startBroker(t, brokerOpts{conf: "traceTopicEnable=true\n"})
	topic := uniq(t, "Traced")
	pgroup, cgroup := uniq(t, "traced-producer"), uniq(t, "traced-consumer")
	trace := func(group string) *primitive.TraceConfig {
		return &primitive.TraceConfig{GroupName: group, Access: primitive.Local, NamesrvAddrs: []string{b.NamesrvAdr}}
	}
	p, err := rocketmq.NewProducer(producer.WithNameServer([]string{b.NamesrvAdr}), producer.WithGroupName(pgroup),
		producer.WithTrace(trace(pgroup)))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown()
	res, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte("traced")).WithKeys([]string{"order-7"}))
	if err != nil || res.Status != primitive.SendOK {
		t.Fatalf("send: %v %v", res, err)
	}
	msgID := res.MsgID

	got := make(chan struct{}, 4)
	c, err := rocketmq.NewPushConsumer(consumer.WithNameServer([]string{b.NamesrvAdr}), consumer.WithGroupName(cgroup),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset), consumer.WithTrace(trace(cgroup)))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Subscribe(topic, consumer.MessageSelector{}, func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		got <- struct{}{}
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	select {
	case <-got:
	case <-time.After(60 * time.Second):
		t.Fatal("the traced message was not consumed within 60 s")
	}

	// The clients flush their traces in batches (every second or so): wait, bounded.
	type record struct {
		Type      string `json:"type"`
		Group     string `json:"group"`
		MsgID     string `json:"msg_id"`
		StoreHost string `json:"store_host"`
		Success   bool   `json:"success"`
		Keys      string `json:"keys"`
	}
	var records []record
	var last string
	ok := waitFor(60*time.Second, func() bool {
		out, err := exec.Command(ferromqBin(t), "admin", "queryMsgTraceById", "-n", b.NamesrvAdr, "-i", msgID,
			"--json", "--log-level", "error").CombinedOutput()
		last = string(out)
		if err != nil || json.Unmarshal(out, &records) != nil {
			return false
		}
		var pub, sub bool
		for _, r := range records {
			pub = pub || (r.Type == "Pub" && r.Group == pgroup && r.Success && r.StoreHost == b.BrokerAddr)
			sub = sub || (r.Type == "SubAfter" && r.Group == cgroup && r.Success)
		}
		return pub && sub
	})
	if !ok {
		t.Fatalf("no Pub by %s and SubAfter by %s for %s; last answer:\n%s", pgroup, cgroup, msgID, last)
	}
	for _, r := range records {
		if r.MsgID != msgID {
			t.Fatalf("a record of another message came back: %+v", r)
		}
	}

	// The table mqadmin prints, with both sections.
	out, err := exec.Command(ferromqBin(t), "admin", "queryMsgTraceById", "-n", b.NamesrvAdr, "-i", msgID,
		"--log-level", "error").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, want := range []string{"#ProducerGroup", "#ConsumerGroup", pgroup, cgroup, "success"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("table lacks %q:\n%s", want, out)
		}
	}
}
