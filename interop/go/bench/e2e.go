package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

func newConsumer(namesrv, group, instance, topic string, handle func(*primitive.MessageExt)) rocketmq.PushConsumer {
	c, err := rocketmq.NewPushConsumer(
		consumer.WithNameServer([]string{namesrv}),
		consumer.WithGroupName(group),
		consumer.WithInstance(instance),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromLastOffset),
	)
	if err != nil {
		panic(err)
	}
	err = c.Subscribe(topic, consumer.MessageSelector{}, func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		for _, m := range msgs {
			handle(m)
		}
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		panic(err)
	}
	if err := c.Start(); err != nil {
		panic(err)
	}
	return c
}

func newProducer(namesrv, name string) rocketmq.Producer {
	p, err := rocketmq.NewProducer(producer.WithNameServer([]string{namesrv}), producer.WithGroupName(name),
		producer.WithInstanceName(fmt.Sprintf("%s-%d", name, os.Getpid())))
	if err != nil {
		panic(err)
	}
	if err := p.Start(); err != nil {
		panic(err)
	}
	return p
}

// endToEnd sends at a fixed rate with the send time in the body and reports the time
// from send to consumption.
func endToEnd(namesrv, topic string, size, rate, seconds int) {
	p := newProducer(namesrv, "e2e-producer")
	body := make([]byte, size)
	if _, err := p.SendSync(context.Background(), primitive.NewMessage(topic, body)); err != nil {
		panic(err)
	}
	var mu sync.Mutex
	var lat []time.Duration
	c := newConsumer(namesrv, "e2e-consumer", fmt.Sprintf("e2e-%d", os.Getpid()), topic, func(m *primitive.MessageExt) {
		if len(m.Body) < 8 {
			return
		}
		sent := int64(binary.BigEndian.Uint64(m.Body))
		if sent == 0 {
			return
		}
		d := time.Duration(time.Now().UnixNano() - sent)
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
	})
	time.Sleep(5 * time.Second) // rebalance and first pulls
	interval := time.Second / time.Duration(rate)
	total := rate * seconds
	start := time.Now()
	var sent int64
	for i := 0; i < total; i++ {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		b := make([]byte, size)
		binary.BigEndian.PutUint64(b, uint64(time.Now().UnixNano()))
		p.SendAsync(context.Background(), func(context.Context, *primitive.SendResult, error) {}, primitive.NewMessage(topic, b))
		atomic.AddInt64(&sent, 1)
	}
	elapsed := time.Since(start)
	time.Sleep(3 * time.Second)
	_ = c.Shutdown()
	_ = p.Shutdown()
	mu.Lock()
	defer mu.Unlock()
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	pct := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(float64(len(lat)-1)*q)]
	}
	fmt.Printf("e2e: sent=%d in %.1fs (%.0f msgs/s) consumed=%d\n", sent, elapsed.Seconds(), float64(sent)/elapsed.Seconds(), len(lat))
	fmt.Printf("send->consume latency p50=%v p99=%v p99.9=%v max=%v\n", pct(0.5), pct(0.99), pct(0.999), pct(1))
}

// rebalance runs two consumers in one group under steady load, stops one, and reports
// how long its queues stay unconsumed before the other takes them over.
func rebalance(namesrv, topic string, seconds int) {
	p := newProducer(namesrv, "rebalance-producer")
	if _, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte("warmup"))); err != nil {
		panic(err)
	}
	type seen struct {
		queue int
		at    time.Time
	}
	var mu sync.Mutex
	var secondSeen []seen
	firstQueues := map[int]time.Time{}
	var stopped atomic.Bool
	c1 := newConsumer(namesrv, "rebalance-group", "rb-1", topic, func(m *primitive.MessageExt) {
		if !stopped.Load() {
			mu.Lock()
			firstQueues[m.Queue.QueueId] = time.Now()
			mu.Unlock()
		}
	})
	c2 := newConsumer(namesrv, "rebalance-group", "rb-2", topic, func(m *primitive.MessageExt) {
		mu.Lock()
		secondSeen = append(secondSeen, seen{m.Queue.QueueId, time.Now()})
		mu.Unlock()
	})
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			_, _ = p.SendSync(context.Background(), primitive.NewMessage(topic, []byte("load")))
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(time.Duration(seconds) * time.Second / 2)
	mu.Lock()
	// The queues consumer 1 was consuming when it stopped (seen in the last second).
	queues := map[int]bool{}
	for q, at := range firstQueues {
		if time.Since(at) < time.Second {
			queues[q] = true
		}
	}
	mu.Unlock()
	stopped.Store(true)
	stopAt := time.Now()
	_ = c1.Shutdown()
	shutdownTook := time.Since(stopAt)
	time.Sleep(time.Duration(seconds) * time.Second / 2)
	close(done)
	mu.Lock()
	taken := map[int]time.Duration{}
	for _, s := range secondSeen {
		if queues[s.queue] && s.at.After(stopAt) {
			if _, ok := taken[s.queue]; !ok {
				taken[s.queue] = s.at.Sub(stopAt)
			}
		}
	}
	mu.Unlock()
	fmt.Printf("consumer 1 owned queues %v; Shutdown() took %v\n", keys(queues), shutdownTook)
	for q, d := range taken {
		fmt.Printf("queue %d consumed by consumer 2 after %v\n", q, d)
	}
	if len(taken) < len(queues) {
		fmt.Printf("only %d of %d queues taken over within the run\n", len(taken), len(queues))
	}
	_ = c2.Shutdown()
	_ = p.Shutdown()
}

func keys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}
