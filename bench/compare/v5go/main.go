// Command v5go drives load through a RocketMQ 5.x gRPC endpoint (FerroMQ's gRPC front or
// Apache's proxy) with the official Go v5 client (github.com/apache/rocketmq-clients/golang/v5)
// and prints `RESULT {json}` as its last line, which bench/compare/grpc.py reads.
//
//	send:    -producers N Producer instances (one connection each), one goroutine each, sync
//	         Send of -size bytes; -warmup seconds unmeasured, then -seconds measured. A send is
//	         measured when it starts inside the measured window; its latency is the Send call's.
//	receive: -consumers N SimpleConsumers (one connection each) of one group, each a loop of
//	         Receive(batch, invisible) followed by one Ack per message, the batch's acks side by
//	         side; the next Receive once they are answered. Stops once -messages distinct
//	         messages are acked (or after -seconds).
//
// Errors are counted twice: as the client API reports them, and on the wire by a gRPC
// interceptor (every SendMessage attempt, including the client's own retries, and every
// AckMessage answer: v5.1.4's SimpleConsumer.Ack returns nil whatever status the server
// answers). Lines `PHASE measure` and `PHASE done` mark the measured window for the harness,
// which reads the server's CPU time between them.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/grpc"
)

type options struct {
	endpoint  string
	topic     string
	group     string
	producers int
	consumers int
	size      int
	seconds   int
	warmup    int
	batch     int
	messages  int64
	invisible time.Duration
	await     time.Duration
	timeout   time.Duration
	tls       bool
}

func main() {
	var o options
	mode := flag.String("mode", "send", "send | receive")
	flag.StringVar(&o.endpoint, "endpoint", "127.0.0.1:8081", "gRPC endpoint (loopback)")
	flag.StringVar(&o.topic, "topic", "GrpcCompare", "topic")
	flag.StringVar(&o.group, "group", "grpc-bench", "receive: consumer group (must exist)")
	flag.IntVar(&o.producers, "producers", 1, "send: producers, each its own client and connection")
	flag.IntVar(&o.consumers, "consumers", 4, "receive: SimpleConsumers, each its own client and connection")
	flag.IntVar(&o.size, "size", 1024, "send: body size in bytes")
	flag.IntVar(&o.seconds, "seconds", 15, "send: measured seconds; receive: give up after this many")
	flag.IntVar(&o.warmup, "warmup", 10, "send: unmeasured seconds of the same load first")
	flag.IntVar(&o.batch, "batch", 32, "receive: maxMessageNum per Receive")
	flag.Int64Var(&o.messages, "messages", 1_000_000, "receive: stop once this many distinct messages are acked")
	flag.DurationVar(&o.invisible, "invisible", 60*time.Second, "receive: invisible duration (Apache's minimum: 10 s)")
	// The Go client sends no long-polling timeout; Apache's proxy then needs awaitDuration above ~2 s.
	flag.DurationVar(&o.await, "await", 5*time.Second, "receive: the SimpleConsumer's awaitDuration")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Second, "send: context deadline of each Send")
	flag.BoolVar(&o.tls, "tls", false, "TLS instead of plaintext")
	logDir := flag.String("log-dir", os.TempDir(), "the client's log directory")
	flag.Parse()

	// Package-wide in the Go client: read when a connection is dialled.
	rmq.EnableSsl = o.tls
	os.Setenv("rocketmq.client.logRoot", *logDir)
	os.Setenv("rocketmq.client.logLevel", "warn")
	rmq.ResetLogger()
	installWireCounters()

	switch *mode {
	case "send":
		send(o)
	case "receive":
		receive(o)
	default:
		fmt.Fprintln(os.Stderr, "unknown -mode", *mode)
		os.Exit(2)
	}
}

// ---- wire-level outcomes -----------------------------------------------------------------

// callNote rides in a call's context down to the gRPC interceptor, which records every
// SendMessage or AckMessage answer of that call there (the client's own retries included).
type callNote struct {
	attempts, failed int
	err              string
}

type noteKey struct{}

func withNote(ctx context.Context, n *callNote) context.Context {
	return context.WithValue(ctx, noteKey{}, n)
}

// installWireCounters wraps the client's gRPC connections (the package's NewRpcClient hook,
// which every client manager calls) with a unary interceptor that sees every SendMessage and
// AckMessage answer.
func installWireCounters() {
	orig := rmq.NewRpcClient
	interceptor := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		n, _ := ctx.Value(noteKey{}).(*callNote)
		if n == nil {
			return err
		}
		bad := ""
		switch r := reply.(type) {
		case *v2.SendMessageResponse:
			bad = badStatus(err, r.GetStatus(), len(r.GetEntries()), func(i int) *v2.Status { return r.GetEntries()[i].GetStatus() })
		case *v2.AckMessageResponse:
			bad = badStatus(err, r.GetStatus(), len(r.GetEntries()), func(i int) *v2.Status { return r.GetEntries()[i].GetStatus() })
		default:
			return err
		}
		n.attempts++
		if bad != "" {
			n.failed++
			n.err = bad
		}
		return err
	}
	rmq.NewRpcClient = func(target string, opts ...rmq.RpcClientOption) (rmq.RpcClient, error) {
		opts = append(opts, rmq.WithRpcClientConnOption(rmq.WithDialOptions(grpc.WithChainUnaryInterceptor(interceptor))))
		return orig(target, opts...)
	}
}

func badStatus(err error, st *v2.Status, entries int, entry func(int) *v2.Status) string {
	if err != nil {
		return err.Error()
	}
	if c := st.GetCode(); c != v2.Code_OK {
		return fmt.Sprintf("%v: %s", c, st.GetMessage())
	}
	for i := 0; i < entries; i++ {
		if c := entry(i).GetCode(); c != v2.Code_OK {
			return fmt.Sprintf("entry %v: %s", c, entry(i).GetMessage())
		}
	}
	return ""
}

// firstError keeps the first error text it is given.
type firstError struct {
	once sync.Once
	s    string
}

func (f *firstError) set(s string) { f.once.Do(func() { f.s = s }) }

// ---- results ------------------------------------------------------------------------------

type result struct {
	Messages   int64   `json:"messages"`
	Failed     int64   `json:"failed"`
	Seconds    float64 `json:"seconds"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	MBPerSec   float64 `json:"mb_per_sec"`
	P50Us      float64 `json:"p50_us,omitempty"`
	P99Us      float64 `json:"p99_us,omitempty"`
	P999Us     float64 `json:"p999_us,omitempty"`
	MaxUs      float64 `json:"max_us,omitempty"`
	// send
	Producers      int    `json:"producers,omitempty"`
	WireAttempts   int64  `json:"wire_attempts,omitempty"`
	WireFailed     int64  `json:"wire_failed"`
	WarmupMessages int64  `json:"warmup_messages,omitempty"`
	WarmupFailed   int64  `json:"warmup_failed"`
	FirstError     string `json:"first_error,omitempty"`
	// receive
	Consumers     int     `json:"consumers,omitempty"`
	Batch         int     `json:"batch,omitempty"`
	Received      int64   `json:"received,omitempty"`
	Duplicates    int64   `json:"duplicates"`
	Redelivered   int64   `json:"redelivered"`
	Receives      int64   `json:"receives,omitempty"`
	EmptyReceives int64   `json:"empty_receives"`
	ReceiveErrors int64   `json:"receive_errors"`
	AckFailed     int64   `json:"ack_failed"`
	AvgBatch      float64 `json:"avg_batch,omitempty"`
	Target        int64   `json:"target,omitempty"`
	FirstMsgMs    float64 `json:"first_message_ms,omitempty"`
}

func percentiles(r *result, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	// Nearest rank, as interop/go/bench computes it.
	pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Nanoseconds()) / 1e3 }
	r.P50Us, r.P99Us, r.P999Us, r.MaxUs = pct(0.5), pct(0.99), pct(0.999), pct(1)
}

func emit(r result) {
	fmt.Printf("messages=%d failed=%d elapsed=%.2fs throughput=%.0f msgs/s p50=%.0fus p99=%.0fus\n",
		r.Messages, r.Failed, r.Seconds, r.MsgsPerSec, r.P50Us, r.P99Us)
	line, _ := json.Marshal(r)
	fmt.Printf("RESULT %s\n", line)
}

func check(what string, err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "v5go: %s: %v\n", what, err)
		os.Exit(1)
	}
}

// ---- send ---------------------------------------------------------------------------------

func send(o options) {
	body := make([]byte, o.size)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	ps := make([]rmq.Producer, o.producers)
	for i := range ps {
		p, err := rmq.NewProducer(&rmq.Config{Endpoint: o.endpoint}, rmq.WithTopics(o.topic))
		check("NewProducer", err)
		check("producer Start", p.Start())
		ps[i] = p
	}

	start := time.Now()
	measureFrom := start.Add(time.Duration(o.warmup) * time.Second)
	measureTo := measureFrom.Add(time.Duration(o.seconds) * time.Second)
	// The phase line marks when the window opens, not when the first send after it starts.
	if o.warmup <= 0 {
		fmt.Println("PHASE measure")
	} else {
		timer := time.AfterFunc(time.Until(measureFrom), func() { fmt.Println("PHASE measure") })
		defer timer.Stop()
	}
	type tally struct {
		lat                                            []time.Duration
		failed, attempts, wireFailed, warm, warmFailed int64
		lastDone                                       time.Time
	}
	tallies := make([]tally, len(ps))
	var firstErr firstError
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := &tallies[i]
			t.lat = make([]time.Duration, 0, 1<<16)
			for {
				t0 := time.Now()
				if !t0.Before(measureTo) {
					break
				}
				measured := !t0.Before(measureFrom)
				note := &callNote{}
				ctx, cancel := context.WithTimeout(withNote(context.Background(), note), o.timeout)
				r, err := p.Send(ctx, &rmq.Message{Topic: o.topic, Body: body})
				cancel()
				d := time.Since(t0)
				if err == nil && (len(r) != 1 || r[0].MessageID == "") {
					err = fmt.Errorf("send receipts %v", r)
				}
				if !measured {
					t.warm++
					if err != nil {
						t.warmFailed++
					}
					continue
				}
				t.attempts += int64(note.attempts)
				t.wireFailed += int64(note.failed)
				if note.err != "" {
					firstErr.set("wire: " + note.err)
				}
				if err != nil {
					t.failed++
					firstErr.set(err.Error())
				} else {
					t.lat = append(t.lat, d)
				}
				t.lastDone = t0.Add(d)
			}
		}()
	}
	wg.Wait()
	fmt.Println("PHASE done")
	for _, p := range ps {
		p.GracefulStop()
	}
	r := result{Producers: o.producers}
	end := measureFrom
	var all []time.Duration
	for _, t := range tallies {
		all = append(all, t.lat...)
		r.Failed += t.failed
		r.WireAttempts += t.attempts
		r.WireFailed += t.wireFailed
		r.WarmupMessages += t.warm - t.warmFailed
		r.WarmupFailed += t.warmFailed
		if t.lastDone.After(end) {
			end = t.lastDone
		}
	}
	r.Messages = int64(len(all))
	r.Seconds = end.Sub(measureFrom).Seconds()
	if r.Seconds > 0 {
		r.MsgsPerSec = float64(r.Messages) / r.Seconds
		r.MBPerSec = r.MsgsPerSec * float64(o.size) / 1e6
	}
	r.FirstError = firstErr.s
	percentiles(&r, all)
	emit(r)
}

// ---- receive + ack ------------------------------------------------------------------------

func receive(o options) {
	cs := make([]rmq.SimpleConsumer, o.consumers)
	for i := range cs {
		c, err := rmq.NewSimpleConsumer(&rmq.Config{Endpoint: o.endpoint, ConsumerGroup: o.group},
			rmq.WithSimpleAwaitDuration(o.await),
			rmq.WithSimpleSubscriptionExpressions(map[string]*rmq.FilterExpression{o.topic: rmq.SUB_ALL}))
		check("NewSimpleConsumer", err)
		check("simple consumer Start", c.Start())
		cs[i] = c
	}

	var (
		mu       sync.Mutex
		seen     = make(map[string]struct{}, min(o.messages, 1<<24))
		acked    atomic.Int64
		doneAt   atomic.Int64
		firstMsg atomic.Int64
		firstErr firstError
	)
	type tally struct {
		lat                                                  []time.Duration
		received, duplicates, redelivered, receives, empty   int64
		receiveErrors, ackFailed, ackAttempts, ackWireFailed int64
	}
	tallies := make([]tally, len(cs))
	// Stopped by cancelling, never by a deadline: the client hands a context's deadline to the
	// server, and Apache's proxy answers ILLEGAL_POLLING_TIME to a receive whose call has less
	// than its minimum long-polling time (5 s) left.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	giveUp := time.AfterFunc(time.Duration(o.seconds)*time.Second, cancel)
	defer giveUp.Stop()
	fmt.Println("PHASE measure")
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := &tallies[i]
			t.lat = make([]time.Duration, 0, 1<<16)
			for ctx.Err() == nil {
				msgs, err := c.Receive(ctx, int32(o.batch), o.invisible)
				if ctx.Err() != nil && err != nil {
					break // stopped while polling: not the server's error
				}
				t.receives++
				if err != nil {
					var st *rmq.ErrRpcStatus
					if errors.As(err, &st) && st.GetCode() == int32(v2.Code_MESSAGE_NOT_FOUND) {
						t.empty++
						continue
					}
					t.receiveErrors++
					firstErr.set("receive: " + err.Error())
					time.Sleep(10 * time.Millisecond)
					continue
				}
				if len(msgs) == 0 {
					t.empty++
					continue
				}
				firstMsg.CompareAndSwap(0, time.Since(start).Nanoseconds())
				t.received += int64(len(msgs))
				fresh := make([]bool, len(msgs))
				mu.Lock()
				for k, m := range msgs {
					if _, dup := seen[m.GetMessageId()]; dup {
						t.duplicates++
					} else {
						seen[m.GetMessageId()] = struct{}{}
						fresh[k] = true
					}
					if m.GetDeliveryAttempt() > 1 {
						t.redelivered++
					}
				}
				mu.Unlock()
				// The batch's acks side by side; each its own AckMessage call (v5.1.4 has no batch ack).
				notes := make([]callNote, len(msgs))
				errs := make([]error, len(msgs))
				lat := make([]time.Duration, len(msgs))
				var awg sync.WaitGroup
				for k, m := range msgs {
					awg.Add(1)
					go func() {
						defer awg.Done()
						t0 := time.Now()
						actx, acancel := context.WithTimeout(withNote(context.Background(), &notes[k]), 10*time.Second)
						errs[k] = c.Ack(actx, m)
						acancel()
						lat[k] = time.Since(t0)
					}()
				}
				awg.Wait()
				for k := range msgs {
					t.ackAttempts += int64(notes[k].attempts)
					t.ackWireFailed += int64(notes[k].failed)
					// Ack returns nil on a non-OK answer; the interceptor saw it.
					if errs[k] != nil || notes[k].failed > 0 {
						t.ackFailed++
						if errs[k] != nil {
							firstErr.set("ack: " + errs[k].Error())
						} else {
							firstErr.set("ack (wire): " + notes[k].err)
						}
						continue
					}
					t.lat = append(t.lat, lat[k])
					if fresh[k] && acked.Add(1) == o.messages {
						doneAt.Store(time.Since(start).Nanoseconds())
						cancel()
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Duration(doneAt.Load())
	if elapsed == 0 {
		elapsed = time.Since(start)
	}
	fmt.Println("PHASE done")
	for _, c := range cs {
		c.GracefulStop()
	}
	r := result{Consumers: o.consumers, Batch: o.batch, Target: o.messages, Seconds: elapsed.Seconds(),
		FirstMsgMs: float64(firstMsg.Load()) / 1e6, FirstError: firstErr.s}
	var all []time.Duration
	for _, t := range tallies {
		all = append(all, t.lat...)
		r.Received += t.received
		r.Duplicates += t.duplicates
		r.Redelivered += t.redelivered
		r.Receives += t.receives
		r.EmptyReceives += t.empty
		r.ReceiveErrors += t.receiveErrors
		r.AckFailed += t.ackFailed
		r.WireAttempts += t.ackAttempts
		r.WireFailed += t.ackWireFailed
	}
	r.Messages = acked.Load()
	r.Failed = r.AckFailed + r.ReceiveErrors
	r.MsgsPerSec = float64(r.Messages) / elapsed.Seconds()
	r.MBPerSec = 0
	if n := r.Receives - r.EmptyReceives - r.ReceiveErrors; n > 0 {
		r.AvgBatch = float64(r.Received) / float64(n)
	}
	// Latencies here are the acks' (per message).
	percentiles(&r, all)
	emit(r)
}
