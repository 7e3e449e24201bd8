// Command bench drives load against a RocketMQ-compatible broker with the official Go
// client and prints throughput and send-latency percentiles. The last line of every
// throughput mode is `RESULT {json}`, which bench/compare reads.
//
//	go run ./bench -namesrv 127.0.0.1:9876 -producers 8 -seconds 20 -size 1024
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"
)

type options struct {
	namesrv   string
	producers int
	messages  int64
	size      int
	topic     string
	group     string
	duration  time.Duration
	rate      int
	batch     int
	inFlight  int
	// topics > 1: sends spread over topics <topic>-00000 … (bench/compare --scale).
	topics int
	// groups > 0: push consumer groups <group>-g000 … consuming those topics during the load.
	groups int
}

func main() {
	var o options
	flag.StringVar(&o.namesrv, "namesrv", "127.0.0.1:9876", "name server address (loopback only)")
	flag.IntVar(&o.producers, "producers", 1, "concurrent producers, each with its own connection")
	flag.Int64Var(&o.messages, "messages", 0, "stop after this many messages (0 = run for -seconds)")
	flag.IntVar(&o.size, "size", 1024, "body size in bytes")
	flag.StringVar(&o.topic, "topic", "BenchmarkTest", "topic")
	flag.StringVar(&o.group, "group", "bench-consumer", "consume: consumer group")
	mode := flag.String("mode", "sync", "sync | async | batch | tx (half + commit) | consume | e2e (fixed-rate send, consume latency) | rebalance")
	flag.IntVar(&o.rate, "rate", 0, "sync/e2e: messages per second over all producers (0 = as fast as possible)")
	seconds := flag.Int("seconds", 30, "how long to run at most")
	flag.IntVar(&o.batch, "batch", 32, "batch: messages per send")
	flag.IntVar(&o.inFlight, "in-flight", 256, "async: sends in flight per producer")
	flag.IntVar(&o.topics, "topics", 1, "sync: spread sends over this many topics, <topic>-00000 … (created beforehand)")
	flag.IntVar(&o.groups, "groups", 0, "sync: push consumer groups consuming the topics while the load runs (topic t in group t mod groups; at most one group per topic)")
	flag.Parse()
	o.duration = time.Duration(*seconds) * time.Second
	rlog.SetLogLevel("error")
	switch *mode {
	case "e2e":
		rate := o.rate
		if rate == 0 {
			rate = 5000
		}
		endToEnd(o.namesrv, o.topic, o.size, rate, *seconds)
	case "rebalance":
		rebalance(o.namesrv, o.topic, *seconds)
	case "consume":
		consume(o)
	case "sync", "tx", "async", "batch":
		produce(o, *mode)
	default:
		fmt.Fprintln(os.Stderr, "unknown -mode", *mode)
		os.Exit(2)
	}
}

// result is what bench/compare reads from the `RESULT` line.
type result struct {
	Messages   int64   `json:"messages"`
	Failed     int64   `json:"failed"`
	Seconds    float64 `json:"seconds"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	MBPerSec   float64 `json:"mb_per_sec"`
	P50Us      float64 `json:"p50_us"`
	P99Us      float64 `json:"p99_us"`
	P999Us     float64 `json:"p999_us"`
	MaxUs      float64 `json:"max_us"`
	// With -groups: messages the consumer groups received by the end (sends included in the
	// measurement and the warm-up's), and how long the drain after the load took.
	Consumed *int64   `json:"consumed,omitempty"`
	DrainS   *float64 `json:"drain_s,omitempty"`
}

func report(messages, failed int64, size int, elapsed time.Duration, latencies []time.Duration) {
	reportWith(messages, failed, size, elapsed, latencies, func(*result) {})
}

func reportWith(messages, failed int64, size int, elapsed time.Duration, latencies []time.Duration, extra func(*result)) {
	sort.Slice(latencies, func(a, b int) bool { return latencies[a] < latencies[b] })
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[int(float64(len(latencies)-1)*p)]
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	r := result{
		Messages: messages, Failed: failed, Seconds: elapsed.Seconds(),
		MsgsPerSec: float64(messages) / elapsed.Seconds(),
		MBPerSec:   float64(messages) * float64(size) / elapsed.Seconds() / 1e6,
		P50Us:      us(pct(0.5)), P99Us: us(pct(0.99)), P999Us: us(pct(0.999)), MaxUs: us(pct(1)),
	}
	extra(&r)
	fmt.Printf("messages=%d failed=%d elapsed=%.2fs\n", messages, failed, elapsed.Seconds())
	fmt.Printf("throughput=%.0f msgs/s (%.1f MB/s)\n", r.MsgsPerSec, r.MBPerSec)
	if len(latencies) > 0 {
		fmt.Printf("latency p50=%v p99=%v p99.9=%v max=%v\n", pct(0.5), pct(0.99), pct(0.999), pct(1))
	}
	line, _ := json.Marshal(r)
	fmt.Printf("RESULT %s\n", line)
}

func produce(o options, mode string) {
	body := make([]byte, o.size)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	ps := make([]sender, o.producers)
	for i := range ps {
		opts := []producer.Option{
			producer.WithNameServer([]string{o.namesrv}),
			producer.WithGroupName(fmt.Sprintf("bench-%d", i)),
			producer.WithInstanceName(fmt.Sprintf("bench-%d-%d", os.Getpid(), i)),
			producer.WithRetry(2),
			// Bodies go as they are, so MB/s counts what the broker stores (the client
			// zlib-compresses bodies over 4 KiB by default, and this one compresses well).
			producer.WithCompressMsgBodyOverHowmuch(math.MaxInt32),
		}
		var s sender
		if mode == "tx" {
			p, err := rocketmq.NewTransactionProducer(commitAll{}, opts...)
			check(err)
			check(p.Start())
			s = txSender{p}
		} else {
			p, err := rocketmq.NewProducer(opts...)
			check(err)
			check(p.Start())
			s = syncSender{p}
		}
		ps[i] = s
	}
	// Warm up: route lookups (and topic auto-creation) happen outside the measurement;
	// with many topics every producer learns every topic's route, in parallel.
	var warm sync.WaitGroup
	var warmed int64
	for i := range ps {
		warm.Add(1)
		go func(i int) {
			defer warm.Done()
			for t := 0; t < o.topics; t++ {
				check(ps[i].send(primitive.NewMessage(topicName(o, t), body)))
				atomic.AddInt64(&warmed, 1)
			}
		}(i)
	}
	warm.Wait()
	consumed, stopConsumers := startGroups(o)
	limit := o.messages
	if limit <= 0 {
		limit = 1 << 62
	}
	perMessage := int64(1)
	if mode == "batch" {
		perMessage = int64(o.batch)
	}
	var next, failures int64
	latencies := make([][]time.Duration, o.producers)
	start := time.Now()
	deadline := start.Add(o.duration)
	var wg sync.WaitGroup
	for i := range ps {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var local []time.Duration
			var mu sync.Mutex
			var slots chan struct{}
			if mode == "async" {
				slots = make(chan struct{}, o.inFlight)
			}
			var sentHere int64
			for time.Now().Before(deadline) && atomic.AddInt64(&next, perMessage) <= limit {
				if o.rate > 0 {
					// Producer i takes every producers-th slot from slot i, so arrivals are
					// spread evenly instead of all producers sending at once each period.
					slot := sentHere*int64(o.producers) + int64(i)
					due := start.Add(time.Duration(float64(slot) * float64(time.Second) / float64(o.rate)))
					if d := time.Until(due); d > 0 {
						time.Sleep(d)
					}
				}
				sentHere++
				t0 := time.Now()
				var err error
				switch mode {
				case "async":
					slots <- struct{}{}
					err = ps[i].(syncSender).p.SendAsync(context.Background(), func(_ context.Context, res *primitive.SendResult, err error) {
						if err == nil && res.Status != primitive.SendOK {
							err = fmt.Errorf("status %d", res.Status)
						}
						if err != nil {
							atomic.AddInt64(&failures, 1)
						} else {
							d := time.Since(t0)
							mu.Lock()
							local = append(local, d)
							mu.Unlock()
						}
						<-slots
					}, primitive.NewMessage(o.topic, body))
					if err != nil {
						<-slots
						atomic.AddInt64(&failures, 1)
					}
					continue
				case "batch":
					msgs := make([]*primitive.Message, o.batch)
					for j := range msgs {
						msgs[j] = primitive.NewMessage(o.topic, body)
					}
					err = ps[i].(syncSender).sendBatch(msgs)
				default:
					topic := topicName(o, int((sentHere-1)*int64(o.producers)+int64(i))%o.topics)
					err = ps[i].send(primitive.NewMessage(topic, body))
				}
				if err != nil {
					atomic.AddInt64(&failures, perMessage)
					continue
				}
				d := time.Since(t0)
				mu.Lock()
				local = append(local, d)
				mu.Unlock()
			}
			// Async: wait for the callbacks still outstanding.
			for j := 0; slots != nil && j < cap(slots); j++ {
				select {
				case slots <- struct{}{}:
				case <-time.After(30 * time.Second):
					j = cap(slots)
				}
			}
			mu.Lock()
			latencies[i] = local
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range latencies {
		all = append(all, l...)
	}
	fmt.Printf("mode=%s producers=%d size=%d topics=%d groups=%d\n", mode, o.producers, o.size, o.topics, o.groups)
	sent := int64(len(all)) * perMessage
	extra := func(*result) {}
	if consumed != nil {
		// Drain: every message sent (the warm-up's too) reaches its group, within 60 s.
		drainStart := time.Now()
		want := sent + atomic.LoadInt64(&warmed)
		for time.Since(drainStart) < 60*time.Second && atomic.LoadInt64(consumed) < want {
			time.Sleep(50 * time.Millisecond)
		}
		got, drain := atomic.LoadInt64(consumed), time.Since(drainStart).Seconds()
		fmt.Printf("consumed=%d of %d (drain %.1fs)\n", got, want, drain)
		extra = func(r *result) { r.Consumed, r.DrainS = &got, &drain }
		stopConsumers()
	}
	reportWith(sent, failures, o.size, elapsed, all, extra)
	for _, p := range ps {
		p.shutdown()
	}
}

// topicName is the t-th topic of the load: the topic itself when there is one.
func topicName(o options, t int) string {
	if o.topics <= 1 {
		return o.topic
	}
	return fmt.Sprintf("%s-%05d", o.topic, t)
}

// startGroups starts push consumer groups, group g consuming the topics t with
// t mod groups == g, from the first offset, and gives them time to be assigned their
// queues; so each message is consumed once whatever the number of topics (with fewer
// topics than o.groups, one group per topic). It returns the count of messages they
// received and a stop function; nil without groups.
func startGroups(o options) (*int64, func()) {
	if o.groups <= 0 {
		return nil, func() {}
	}
	groups := o.groups
	if o.topics < groups {
		groups = o.topics
	}
	var count int64
	cs := make([]rocketmq.PushConsumer, groups)
	for g := range cs {
		c, err := rocketmq.NewPushConsumer(
			consumer.WithNameServer([]string{o.namesrv}),
			consumer.WithGroupName(fmt.Sprintf("%s-g%03d", o.group, g)),
			consumer.WithInstance(fmt.Sprintf("bench-%d-g%d", os.Getpid(), g)),
			consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
			consumer.WithConsumeMessageBatchMaxSize(32),
			consumer.WithPullBatchSize(32),
		)
		check(err)
		listener := func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			atomic.AddInt64(&count, int64(len(msgs)))
			return consumer.ConsumeSuccess, nil
		}
		for t := g; t < o.topics; t += groups {
			check(c.Subscribe(topicName(o, t), consumer.MessageSelector{}, listener))
		}
		check(c.Start())
		cs[g] = c
	}
	// Rebalancing (queue assignment) is asynchronous in the Go client: give it a moment.
	time.Sleep(5 * time.Second)
	return &count, func() {
		for _, c := range cs {
			_ = c.Shutdown()
		}
	}
}

// consume drains a topic with a new push consumer group from the first offset and
// reports throughput from the first message to the last.
func consume(o options) {
	var count int64
	var first, last atomic.Int64
	c, err := rocketmq.NewPushConsumer(
		consumer.WithNameServer([]string{o.namesrv}),
		consumer.WithGroupName(o.group),
		consumer.WithInstance(fmt.Sprintf("bench-%d", os.Getpid())),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
		consumer.WithConsumeMessageBatchMaxSize(32),
		consumer.WithPullBatchSize(32),
	)
	check(err)
	check(c.Subscribe(o.topic, consumer.MessageSelector{}, func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		now := time.Now().UnixNano()
		first.CompareAndSwap(0, now)
		last.Store(now)
		atomic.AddInt64(&count, int64(len(msgs)))
		return consumer.ConsumeSuccess, nil
	}))
	check(c.Start())
	deadline := time.Now().Add(o.duration)
	for time.Now().Before(deadline) && (o.messages <= 0 || atomic.LoadInt64(&count) < o.messages) {
		time.Sleep(10 * time.Millisecond)
	}
	_ = c.Shutdown()
	n := atomic.LoadInt64(&count)
	elapsed := time.Duration(last.Load() - first.Load())
	if elapsed <= 0 {
		elapsed = time.Nanosecond
	}
	fmt.Printf("mode=consume group=%s\n", o.group)
	report(n, 0, o.size, elapsed, nil)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type sender interface {
	send(*primitive.Message) error
	shutdown()
}

type syncSender struct{ p rocketmq.Producer }

func (s syncSender) send(m *primitive.Message) error {
	res, err := s.p.SendSync(context.Background(), m)
	if err == nil && res.Status != primitive.SendOK {
		err = fmt.Errorf("status %d", res.Status)
	}
	return err
}

func (s syncSender) sendBatch(msgs []*primitive.Message) error {
	res, err := s.p.SendSync(context.Background(), msgs...)
	if err == nil && res.Status != primitive.SendOK {
		err = fmt.Errorf("status %d", res.Status)
	}
	return err
}
func (s syncSender) shutdown() { _ = s.p.Shutdown() }

type txSender struct{ p rocketmq.TransactionProducer }

func (s txSender) send(m *primitive.Message) error {
	res, err := s.p.SendMessageInTransaction(context.Background(), m)
	if err == nil && res.State != primitive.CommitMessageState {
		err = fmt.Errorf("state %d", res.State)
	}
	return err
}
func (s txSender) shutdown() { _ = s.p.Shutdown() }

// commitAll commits every local transaction at once.
type commitAll struct{}

func (commitAll) ExecuteLocalTransaction(*primitive.Message) primitive.LocalTransactionState {
	return primitive.CommitMessageState
}
func (commitAll) CheckLocalTransaction(*primitive.MessageExt) primitive.LocalTransactionState {
	return primitive.CommitMessageState
}
