// Command v2peer sends or receives messages with the official Go v2 (remoting) client, for the
// mixed-client tests of the v5 suites (interop/v5/python/test_mixed.py): a message sent here is
// received by a 5.x gRPC client and the other way round.
//
//	v2peer -namesrv 127.0.0.1:9876 send -msgs '[{"topic":"T","tag":"A","keys":["k1","k2"],"props":{"a":"1"},"body":"x"}]'
//	v2peer -namesrv 127.0.0.1:9876 receive -topic T -group G -expr 'A || B' -count 3 -timeout 30s
//
// send: one SendSync per message, in order; prints one JSON line per message with the send
// result: msgId (the client-generated UNIQ_KEY), offsetMsgId, queue, queueOffset.
//
// receive: a push consumer of -group (CONSUME_FROM_FIRST_OFFSET, a new group starts at offset 0)
// subscribed to -topic with the tag expression -expr; prints each message as one JSON line
// (topic, tags, keys, every property the client holds, body, msgId, offsetMsgId, queue, offset,
// reconsumeTimes, bornTimestamp) as it arrives and exits 0 once -count have arrived, or exits 1 at
// -timeout. It then waits -linger more and prints any further message too (duplicates show up).
// Exit status 2: bad arguments; 1: a client error or timeout (the reason on stderr).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"
)

type outgoing struct {
	Topic string            `json:"topic"`
	Tag   string            `json:"tag"`
	Keys  []string          `json:"keys"`
	Props map[string]string `json:"props"`
	Body  string            `json:"body"`
}

type sent struct {
	Body        string `json:"body"`
	Status      int    `json:"status"`
	MsgID       string `json:"msgId"`
	OffsetMsgID string `json:"offsetMsgId"`
	Broker      string `json:"broker"`
	Queue       int    `json:"queue"`
	QueueOffset int64  `json:"queueOffset"`
}

type received struct {
	Topic          string            `json:"topic"`
	Tags           string            `json:"tags"`
	Keys           string            `json:"keys"`
	Properties     map[string]string `json:"properties"`
	Body           string            `json:"body"`
	MsgID          string            `json:"msgId"`
	OffsetMsgID    string            `json:"offsetMsgId"`
	Queue          int               `json:"queue"`
	QueueOffset    int64             `json:"queueOffset"`
	ReconsumeTimes int32             `json:"reconsumeTimes"`
	BornTimestamp  int64             `json:"bornTimestamp"`
	BornHost       string            `json:"bornHost"`
}

func main() {
	namesrv := flag.String("namesrv", "127.0.0.1:9876", "name server")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: v2peer [-namesrv addr] send -msgs JSON | receive -topic T -group G [-expr E] -count N [-timeout D] [-linger D]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if lvl := os.Getenv("V2PEER_LOG_LEVEL"); lvl != "" {
		rlog.SetLogLevel(lvl)
	} else {
		rlog.SetLogLevel("error")
	}
	if flag.NArg() < 1 {
		flag.Usage()
		os.Exit(2)
	}
	args := flag.Args()[1:]
	switch flag.Arg(0) {
	case "send":
		send(*namesrv, args)
	case "receive":
		receive(*namesrv, args)
	default:
		flag.Usage()
		os.Exit(2)
	}
}

func send(namesrv string, args []string) {
	fs := flag.NewFlagSet("send", flag.ExitOnError)
	msgs := fs.String("msgs", "", "JSON array of {topic, tag, keys, props, body}")
	group := fs.String("group", "v2peer-producer", "producer group")
	_ = fs.Parse(args)
	var out []outgoing
	if err := json.Unmarshal([]byte(*msgs), &out); err != nil || len(out) == 0 {
		fmt.Fprintf(os.Stderr, "-msgs: want a non-empty JSON array (%v)\n", err)
		os.Exit(2)
	}
	p, err := rocketmq.NewProducer(producer.WithNameServer([]string{namesrv}), producer.WithGroupName(*group),
		producer.WithInstanceName(fmt.Sprintf("v2peer-send-%d", os.Getpid())), producer.WithRetry(1),
		producer.WithSendMsgTimeout(5*time.Second))
	must(err)
	must(p.Start())
	defer func() { _ = p.Shutdown() }()
	for _, o := range out {
		m := primitive.NewMessage(o.Topic, []byte(o.Body))
		if o.Tag != "" {
			m.WithTag(o.Tag)
		}
		if len(o.Keys) > 0 {
			m.WithKeys(o.Keys)
		}
		for k, v := range o.Props {
			m.WithProperty(k, v)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := p.SendSync(ctx, m)
		cancel()
		if err != nil {
			fail("send %q: %v", o.Body, err)
		}
		if res.Status != primitive.SendOK {
			fail("send %q: status %v", o.Body, res.Status)
		}
		s := sent{Body: o.Body, Status: int(res.Status), MsgID: res.MsgID, OffsetMsgID: res.OffsetMsgID, QueueOffset: res.QueueOffset}
		if res.MessageQueue != nil {
			s.Broker, s.Queue = res.MessageQueue.BrokerName, res.MessageQueue.QueueId
		}
		emit(s)
	}
}

func receive(namesrv string, args []string) {
	fs := flag.NewFlagSet("receive", flag.ExitOnError)
	topic := fs.String("topic", "", "topic")
	group := fs.String("group", "", "consumer group")
	expr := fs.String("expr", "*", "tag expression")
	count := fs.Int("count", 1, "messages to wait for")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after")
	linger := fs.Duration("linger", 0, "after -count messages, keep printing further ones for this long")
	_ = fs.Parse(args)
	if *topic == "" || *group == "" || *count < 1 {
		fmt.Fprintln(os.Stderr, "receive: -topic, -group and -count >= 1 are required")
		os.Exit(2)
	}
	got := make(chan received, 1024)
	c, err := rocketmq.NewPushConsumer(consumer.WithNameServer([]string{namesrv}), consumer.WithGroupName(*group),
		consumer.WithInstance(fmt.Sprintf("v2peer-receive-%d", os.Getpid())),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	must(err)
	sel := consumer.MessageSelector{Type: consumer.TAG, Expression: *expr}
	must(c.Subscribe(*topic, sel, func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		for _, m := range msgs {
			r := received{Topic: m.Topic, Tags: m.GetTags(), Keys: m.GetKeys(), Properties: m.GetProperties(),
				Body: string(m.Body), MsgID: m.MsgId, OffsetMsgID: m.OffsetMsgId, QueueOffset: m.QueueOffset,
				ReconsumeTimes: m.ReconsumeTimes, BornTimestamp: m.BornTimestamp, BornHost: m.BornHost}
			if m.Queue != nil {
				r.Queue = m.Queue.QueueId
			}
			got <- r
		}
		return consumer.ConsumeSuccess, nil
	}))
	must(c.Start())
	deadline := time.After(*timeout)
	for n := 0; n < *count; n++ {
		select {
		case r := <-got:
			emit(r)
		case <-deadline:
			_ = c.Shutdown()
			fail("received %d of %d messages within %v", n, *count, *timeout)
		}
	}
	if *linger > 0 {
		end := time.After(*linger)
	more:
		for {
			select {
			case r := <-got:
				emit(r)
			case <-end:
				break more
			}
		}
	}
	// The push consumer commits offsets on Shutdown; nothing here depends on them.
	_ = c.Shutdown()
}

func emit(v interface{}) {
	line, err := json.Marshal(v)
	must(err)
	fmt.Println(string(line))
}

func must(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, strings.TrimSuffix(format, "\n")+"\n", args...)
	os.Exit(1)
}
