// Command bench drives load against a RocketMQ-compatible broker with the official Go
// client and prints throughput and send-latency percentiles.
//
//	go run ./bench -namesrv 127.0.0.1:9876 -producers 8 -messages 200000 -size 1024
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"
)

func main() {
	namesrv := flag.String("namesrv", "127.0.0.1:9876", "name server address (loopback only)")
	producers := flag.Int("producers", 1, "concurrent producers, each with its own connection")
	messages := flag.Int("messages", 100000, "messages to send in total")
	size := flag.Int("size", 1024, "body size in bytes")
	topic := flag.String("topic", "BenchmarkTest", "topic")
	maxDuration := flag.Duration("max-duration", 5*time.Minute, "stop after this long even if not all messages are sent")
	mode := flag.String("mode", "sync", "sync | tx (half + commit) | e2e (fixed-rate send, consume latency) | rebalance")
	rate := flag.Int("rate", 5000, "e2e: messages per second")
	seconds := flag.Int("seconds", 30, "e2e/rebalance: how long to run")
	flag.Parse()
	rlog.SetLogLevel("error")
	switch *mode {
	case "e2e":
		endToEnd(*namesrv, *topic, *size, *rate, *seconds)
		return
	case "rebalance":
		rebalance(*namesrv, *topic, *seconds)
		return
	case "sync", "tx":
	default:
		panic("unknown -mode " + *mode)
	}
	tx := *mode == "tx"

	body := make([]byte, *size)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	ps := make([]sender, *producers)
	for i := range ps {
		opts := []producer.Option{
			producer.WithNameServer([]string{*namesrv}),
			producer.WithGroupName(fmt.Sprintf("bench-%d", i)),
			producer.WithInstanceName(fmt.Sprintf("bench-%d-%d", os.Getpid(), i)),
			producer.WithRetry(2),
		}
		var s sender
		if tx {
			p, err := rocketmq.NewTransactionProducer(commitAll{}, opts...)
			if err != nil {
				panic(err)
			}
			if err := p.Start(); err != nil {
				panic(err)
			}
			s = txSender{p}
		} else {
			p, err := rocketmq.NewProducer(opts...)
			if err != nil {
				panic(err)
			}
			if err := p.Start(); err != nil {
				panic(err)
			}
			s = syncSender{p}
		}
		// Warm up: route lookup and topic auto-creation happen outside the measurement.
		if err := s.send(primitive.NewMessage(*topic, body)); err != nil {
			panic(err)
		}
		ps[i] = s
	}

	var next int64 = -1
	var failures int64
	latencies := make([][]time.Duration, *producers)
	deadline := time.Now().Add(*maxDuration)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range ps {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			local := make([]time.Duration, 0, *messages / *producers + 1)
			for atomic.AddInt64(&next, 1) < int64(*messages) && time.Now().Before(deadline) {
				t0 := time.Now()
				err := ps[i].send(primitive.NewMessage(*topic, body))
				if err != nil {
					atomic.AddInt64(&failures, 1)
					continue
				}
				local = append(local, time.Since(t0))
			}
			latencies[i] = local
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range latencies {
		all = append(all, l...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[int(float64(len(all)-1)*p)]
	}
	fmt.Printf("producers=%d size=%d sent=%d failed=%d elapsed=%.2fs\n", *producers, *size, len(all), failures, elapsed.Seconds())
	fmt.Printf("throughput=%.0f msgs/s (%.1f MB/s)\n", float64(len(all))/elapsed.Seconds(), float64(len(all)*(*size))/elapsed.Seconds()/1e6)
	fmt.Printf("latency p50=%v p99=%v p99.9=%v max=%v\n", pct(0.5), pct(0.99), pct(0.999), pct(1))
	for _, p := range ps {
		p.shutdown()
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
