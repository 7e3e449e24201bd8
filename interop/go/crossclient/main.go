// Command crossclient sends or receives messages with the official Go client, for the
// Rust client's cross-client tests and the browser tests. Sent messages' ids and received
// messages are printed one JSON object per line (received: body, tags, keys and user
// properties). -trace turns the client's message tracing on (RMQ_SYS_TRACE_TOPIC).
//
//	crossclient -namesrv 127.0.0.1:9876 -mode send -topic T -count 5
//	crossclient -namesrv 127.0.0.1:9876 -mode receive -topic T -group G -count 5
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"
)

type sent struct {
	MsgID       string `json:"msgId"`
	OffsetMsgID string `json:"offsetMsgId"`
}

type record struct {
	Body  string            `json:"body"`
	Tags  string            `json:"tags"`
	Keys  string            `json:"keys"`
	Props map[string]string `json:"props"`
}

func main() {
	namesrv := flag.String("namesrv", "127.0.0.1:9876", "name server (loopback)")
	mode := flag.String("mode", "send", "send | receive")
	topic := flag.String("topic", "crossclient", "topic")
	group := flag.String("group", "crossclient", "consumer group")
	count := flag.Int("count", 5, "messages")
	timeout := flag.Duration("timeout", 30*time.Second, "receive: give up after")
	trace := flag.Bool("trace", false, "trace sends and consumptions to RMQ_SYS_TRACE_TOPIC")
	producerGroup := flag.String("producer-group", "crossclient-go", "send: producer group")
	flag.Parse()
	rlog.SetLogLevel("error")
	traceConfig := func(group string) *primitive.TraceConfig {
		return &primitive.TraceConfig{GroupName: group, Access: primitive.Local, NamesrvAddrs: []string{*namesrv}}
	}
	switch *mode {
	case "send":
		opts := []producer.Option{producer.WithNameServer([]string{*namesrv}), producer.WithGroupName(*producerGroup)}
		if *trace {
			opts = append(opts, producer.WithTrace(traceConfig(*producerGroup)))
		}
		p, err := rocketmq.NewProducer(opts...)
		must(err)
		must(p.Start())
		for i := 0; i < *count; i++ {
			m := primitive.NewMessage(*topic, []byte(fmt.Sprintf("from-go-%d", i)))
			m.WithTag(fmt.Sprintf("tag%d", i))
			m.WithKeys([]string{fmt.Sprintf("key%d", i), "shared"})
			m.WithProperty("color", fmt.Sprintf("c%d", i))
			res, err := p.SendSync(context.Background(), m)
			must(err)
			if res.Status != primitive.SendOK {
				fail("status %v", res.Status)
			}
			line, _ := json.Marshal(sent{MsgID: res.MsgID, OffsetMsgID: res.OffsetMsgID})
			fmt.Println(string(line))
		}
		if *trace {
			time.Sleep(time.Second) // the trace dispatcher sends its batches in the background
		}
		_ = p.Shutdown()
	case "receive":
		got := make(chan record, *count*2)
		opts := []consumer.Option{consumer.WithNameServer([]string{*namesrv}), consumer.WithGroupName(*group),
			consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset)}
		if *trace {
			opts = append(opts, consumer.WithTrace(traceConfig(*group)))
		}
		c, err := rocketmq.NewPushConsumer(opts...)
		must(err)
		must(c.Subscribe(*topic, consumer.MessageSelector{}, func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			for _, m := range msgs {
				got <- record{Body: string(m.Body), Tags: m.GetTags(), Keys: m.GetKeys(), Props: map[string]string{"color": m.GetProperty("color")}}
			}
			return consumer.ConsumeSuccess, nil
		}))
		must(c.Start())
		deadline := time.After(*timeout)
		for n := 0; n < *count; n++ {
			select {
			case r := <-got:
				line, _ := json.Marshal(r)
				fmt.Println(string(line))
			case <-deadline:
				fail("received %d of %d", n, *count)
			}
		}
		if *trace {
			time.Sleep(time.Second) // the trace dispatcher sends its batches in the background
		}
		_ = c.Shutdown()
	default:
		fail("unknown mode %s", *mode)
	}
}

func must(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}
