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
	flag.Parse()
	rlog.SetLogLevel("error")

	body := make([]byte, *size)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	ps := make([]rocketmq.Producer, *producers)
	for i := range ps {
		p, err := rocketmq.NewProducer(
			producer.WithNameServer([]string{*namesrv}),
			producer.WithGroupName(fmt.Sprintf("bench-%d", i)),
			producer.WithInstanceName(fmt.Sprintf("bench-%d-%d", os.Getpid(), i)),
			producer.WithRetry(2),
		)
		if err != nil {
			panic(err)
		}
		if err := p.Start(); err != nil {
			panic(err)
		}
		// Warm up: route lookup and topic auto-creation happen outside the measurement.
		if _, err := p.SendSync(context.Background(), primitive.NewMessage(*topic, body)); err != nil {
			panic(err)
		}
		ps[i] = p
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
				res, err := ps[i].SendSync(context.Background(), primitive.NewMessage(*topic, body))
				if err != nil || res.Status != primitive.SendOK {
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
		_ = p.Shutdown()
	}
}
