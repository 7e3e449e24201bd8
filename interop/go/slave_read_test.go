package interop

// TestSlaveReadsWhileMasterAway: a classic master/slave broker group (one
// `ferromq namesrv`, a master `brokerRole=ASYNC_MASTER` and its slave
// `brokerId=1, brokerRole=SLAVE`, three separate processes on 127.0.0.1) and
// the official Go client (v2.1.2). What a user expects:
//
//  1. a push consumer that is reading a backlog goes on reading it, without
//     being restarted, when the master is SIGKILLed: it receives every one of
//     the N messages, the ones it had not yet pulled from the slave;
//  2. when the master returns (same ports, same data directory), it holds the
//     group's offsets of everything consumed meanwhile, and a new consumer of
//     the group (after the first one shut down) is redelivered nothing.
//
// The consumer's flow control is set so low (PullThresholdForQueue 2, batch 2)
// that at the kill it holds at most a few messages per queue: the test checks
// that far more than that were still to come, so they can only have been read
// from the slave.
//
// The consumer finds the slave through the name server: after the master's
// connection closes, the topic's route must still list the group's queues,
// with the slave's address (Apache's RouteInfoManager drops a broker name's
// queue data only when its last broker is gone). A Go client that gets no
// route keeps pulling from the dead master's address.
//
// How the offsets reach the master, with this client: v2.1.2 clears a pull's
// commit flag when it pulls from a slave (push_consumer.go: `if
// brokerResult.Slave { clearCommitOffsetFlag }`) and sends
// UPDATE_CONSUMER_OFFSET only to the master's address (offset_store.go:
// FindBrokerAddrByName = BrokerAddresses[0]). So while the master is away the
// Go client commits nothing anywhere (its 5 s persist logs errors), keeps its
// progress in memory, and commits it to the master once it finds the master
// in the topic's route again (the persist round re-reads the route when it
// knows no master, so within about 5 s of the restart). The test logs the
// slave's committed offsets during the outage to show which way they came;
// the slave's hand-back of commits taken while the master was away (slave.rs
// hand_over_offsets) runs at the slave's first metadata copy after the master
// returns and must not take the master's offsets back either.
//
// Why the last assertion fails when the offsets did not reach the master: the
// new consumer of the group starts from the master's committed offsets. If
// the master held only what was committed before the kill (or an older copy
// came back from the slave), the new consumer would receive again every
// message consumed during the outage, which is by construction most of the N
// (the test checks that more than half were consumed after the kill). It
// must receive none of them: fresh messages sent after its start, one per
// queue at least, prove it was pulling every queue past the old ones (a pull
// returns a queue's messages in offset order, so any redelivery of that queue
// comes before its fresh message).
//
// Time: about 65 s, mostly the Go client's 30 s route refresh before it
// turns to the slave.
//
// FERROMQ_SLAVE_READ_NAMESRV=host:port runs the test against that name server
// (e.g. Apache's own) instead of starting `ferromq namesrv`.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

const (
	srQueues      = 4
	srMessages    = 300
	srPerMessage  = 40 * time.Millisecond // the consumer's work per message (serialized)
	srKillAfter   = 70                    // consumed messages before the master is killed
	srPullBatch   = 2
	srPullHold    = 2                // PullThresholdForQueue: cached messages above which a queue is not pulled
	srDrainWait   = 90 * time.Second // the Go client refreshes routes every 30 s
	srOffsetsWait = 75 * time.Second
)

// ---------------------------------------------------------------------------
// Raw queries.
// ---------------------------------------------------------------------------

// srMaxOffsets asks a broker for the end of each queue of topic (GET_MAX_OFFSET).
func srMaxOffsets(addr, topic string) ([]int64, error) {
	out := make([]int64, srQueues)
	for q := range out {
		r, err := rawInvoke(addr, codeGetMaxOffset, map[string]string{"topic": topic, "queueId": strconv.Itoa(q)}, nil, 3*time.Second)
		if err != nil {
			return nil, err
		}
		if r.Code != 0 {
			return nil, fmt.Errorf("GET_MAX_OFFSET q%d: %s", q, r)
		}
		if out[q], err = strconv.ParseInt(r.ExtFields["offset"], 10, 64); err != nil {
			return nil, fmt.Errorf("GET_MAX_OFFSET q%d: %s", q, r)
		}
	}
	return out, nil
}

// srCommitted asks a broker for the group's committed offset of each queue
// (-1: none); on an error the error text stands in.
func srCommitted(addr, group, topic string) ([]int64, string) {
	out := make([]int64, srQueues)
	for q := range out {
		off, found, err := queryConsumerOffset(addr, group, topic, q)
		switch {
		case err != nil:
			return nil, err.Error()
		case !found:
			out[q] = -1
		default:
			out[q] = off
		}
	}
	return out, fmt.Sprint(out)
}

// srRoute describes the name server's answer to GET_ROUTEINFO_BY_TOPIC.
func srRoute(nsAddr, topic string) string {
	r, err := rawInvoke(nsAddr, codeGetRouteInfo, map[string]string{"topic": topic}, nil, 3*time.Second)
	switch {
	case err != nil:
		return err.Error()
	case r.Code != 0:
		return fmt.Sprintf("code %d (%s)", r.Code, r.Remark)
	default:
		return string(r.Body)
	}
}

func srCovers(committed, ends []int64) bool {
	if len(committed) != len(ends) {
		return false
	}
	for q := range ends {
		if committed[q] < ends[q] {
			return false
		}
	}
	return true
}

// ---------------------------------------------------------------------------
// The test.
// ---------------------------------------------------------------------------

func TestSlaveReadsWhileMasterAway(t *testing.T) {
	testStart := time.Now()
	captureClientLog(t)
	bin := ferromqBin(t)
	dir := t.TempDir()
	ports := &cmPorts{t: t, used: map[int]bool{}}
	nsAddr := fmt.Sprintf("127.0.0.1:%d", ports.get(false))
	masterAddr := fmt.Sprintf("127.0.0.1:%d", ports.get(true))
	slaveAddr := fmt.Sprintf("127.0.0.1:%d", ports.get(true))
	masterHA, slaveHA := ports.get(false), ports.get(false)
	brokerName := "srgo-" + nonce()

	var procs []*cmNode
	if ext := os.Getenv("FERROMQ_SLAVE_READ_NAMESRV"); ext != "" {
		nsAddr = ext // e.g. Apache's own name server, to compare
		t.Logf("using the name server at %s (FERROMQ_SLAVE_READ_NAMESRV)", nsAddr)
	} else {
		ns := newCMNode(t, "namesrv", nsAddr, "namesrv", "--listen", nsAddr)
		ns.start()
		procs = append(procs, ns)
	}
	masterConf := cmWriteConf(t, dir, "master", fmt.Sprintf(
		"brokerName=%s\nbrokerId=0\nbrokerRole=ASYNC_MASTER\nhaListenPort=%d\nnamesrvAddr=%s\n", brokerName, masterHA, nsAddr))
	slaveConf := cmWriteConf(t, dir, "slave", fmt.Sprintf(
		"brokerName=%s\nbrokerId=1\nbrokerRole=SLAVE\nhaMasterAddress=127.0.0.1:%d\nhaListenPort=%d\nnamesrvAddr=%s\n",
		brokerName, masterHA, slaveHA, nsAddr))
	master := newCMNode(t, "master", masterAddr, "broker", "-c", masterConf, "--data-dir", filepath.Join(dir, "master"), "--listen", masterAddr)
	master.start()
	slave := newCMNode(t, "slave", slaveAddr, "broker", "-c", slaveConf, "--data-dir", filepath.Join(dir, "slave"), "--listen", slaveAddr)
	slave.start()
	procs = append(procs, master, slave)
	checkCrashes := func(when string) { t.Helper(); cmCheckCrashes(t, when, procs) }
	// waitUntil polls cond every 200 ms for at most timeout, failing the test
	// on a crash of any process.
	waitUntil := func(when string, timeout time.Duration, cond func() bool) bool {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			checkCrashes(when)
			if cond() {
				return true
			}
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// A topic with 4 queues on the master; the slave copies it (its metadata
	// copy runs every 10 s) and the name server routes both brokers.
	topic := uniq(t, "T")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	out, err := exec.CommandContext(ctx, bin, "admin", "updateTopic", "-n", nsAddr, "-b", masterAddr,
		"-t", topic, "-r", strconv.Itoa(srQueues), "-w", strconv.Itoa(srQueues), "--log-level", "warn").CombinedOutput()
	cancel()
	if err != nil {
		t.Fatalf("ferromq admin updateTopic on %s: %v\n%s", masterAddr, err, out)
	}
	var route string
	if !waitUntil("waiting for the topic's route", 30*time.Second, func() bool {
		r, err := rawInvoke(nsAddr, codeGetRouteInfo, map[string]string{"topic": topic}, nil, 3*time.Second)
		if err != nil || r.Code != 0 {
			return false
		}
		route = string(r.Body)
		return strings.Contains(route, masterAddr) && strings.Contains(route, slaveAddr)
	}) {
		t.Fatalf("the name server does not route %s to both the master %s and the slave %s within 30s; last route %s",
			topic, masterAddr, slaveAddr, route)
	}
	if !waitUntil("waiting for the slave to copy the topic", 30*time.Second, func() bool {
		r, err := rawInvoke(slaveAddr, 21 /* GET_ALL_TOPIC_CONFIG */, nil, nil, 3*time.Second)
		return err == nil && r.Code == 0 && strings.Contains(string(r.Body), topic)
	}) {
		t.Fatalf("the slave %s does not hold topic %s 30s after it was created on the master", slaveAddr, topic)
	}

	// N messages with unique bodies, to the master; the slave must hold them.
	p := newProducer(t, nsAddr)
	bodies := bodiesN("slave-read-"+nonce(), srMessages)
	sendSyncN(t, p, topic, bodies)
	ends, err := srMaxOffsets(masterAddr, topic)
	if err != nil {
		t.Fatalf("the master's queue ends: %v", err)
	}
	var slaveEnds []int64
	if !waitUntil("waiting for the slave to replicate", 30*time.Second, func() bool {
		slaveEnds, err = srMaxOffsets(slaveAddr, topic)
		return err == nil && fmt.Sprint(slaveEnds) == fmt.Sprint(ends)
	}) {
		t.Fatalf("the slave's queue ends %v (err %v) do not reach the master's %v within 30s", slaveEnds, err, ends)
	}
	t.Logf("%d messages sent; queue ends on the master and the slave: %v", srMessages, ends)

	// A slow consumer of a new group, from the first offset, holding only a
	// few messages per queue ahead of its work.
	group := uniq(t, "CG")
	c := newCollector()
	var consumed atomic.Int64
	var work sync.Mutex
	handler := func(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		work.Lock()
		defer work.Unlock()
		time.Sleep(srPerMessage * time.Duration(len(msgs)))
		r, err := c.handle(ctx, msgs...)
		consumed.Add(int64(len(msgs)))
		return r, err
	}
	_, stopConsumer := startConsumer(t, nsAddr, topic, consumer.MessageSelector{}, handler, consumerOpts{
		group: group, from: consumer.ConsumeFromFirstOffset,
		extra: []consumer.Option{consumer.WithPullBatchSize(srPullBatch), consumer.WithPullThresholdForQueue(srPullHold)},
	})
	if !waitUntil("waiting for the first consumption", 60*time.Second, func() bool { return consumed.Load() >= srKillAfter }) {
		t.Fatalf("the consumer consumed only %d messages within 60s (want %d before the kill)", consumed.Load(), srKillAfter)
	}
	_, preKillText := srCommitted(masterAddr, group, topic)
	master.kill()
	killAt := time.Now()
	atKill := len(c.snapshot())
	t.Logf("master SIGKILLed after %d distinct messages consumed; its committed offsets then: %s", atKill, preKillText)
	// At most about (threshold + batch) per queue were held by the client,
	// plus the batches in its workers: the rest must come from the slave.
	if left, held := srMessages-atKill, srQueues*(srPullHold+2*srPullBatch)+32; left <= held || left < srMessages/2 {
		t.Fatalf("only %d messages were left at the kill (the client may hold about %d): the test would not show reads "+
			"from the slave; slow the consumer down", left, held)
	}

	// The name server has seen the master's connection close: clients can
	// only reach the slave if the topic's route still lists the group's
	// queues, with the slave's address (as Apache's name server does while
	// any broker of the group is registered).
	time.Sleep(2 * time.Second)
	awayRoute := srRoute(nsAddr, topic)
	t.Logf("the name server's route for the topic with the master away: %s", awayRoute)

	// 1. Every message is consumed with the master gone.
	if !waitUntil("consuming with the master away", srDrainWait, func() bool { return len(c.snapshot()) == srMessages }) {
		d := compare(bodies, c.snapshot())
		_, slaveText := srCommitted(slaveAddr, group, topic)
		t.Fatalf("with the master SIGKILLed, the consumer received %d of %d messages within %v (%d at the kill): %s\n"+
			"the name server's route for the topic 2s after the kill: %s\nand now: %s\n"+
			"(a Go client keeps pulling from the addresses of its last route; it can only turn to the slave "+
			"if the name server still routes the topic to the group with the slave's address)\n"+
			"the slave's committed offsets: %s",
			len(c.snapshot()), srMessages, srDrainWait, atKill, d, awayRoute, srRoute(nsAddr, topic), slaveText)
	}
	drained := time.Since(killAt)
	d := compare(bodies, c.snapshot())
	t.Logf("all %d messages consumed %v after the kill (%d after it); duplicates: %d bodies, %d extra deliveries",
		srMessages, drained.Round(time.Millisecond), srMessages-atKill, d.dupBodies, d.dupExtra)
	if len(d.unexpected) > 0 {
		t.Errorf("unexpected bodies: %s", d)
	}
	// What the slave holds for the group now (see the doc comment: the Go
	// client sends it no commit).
	time.Sleep(6 * time.Second) // one more 5 s persist round of the client
	_, slaveText := srCommitted(slaveAddr, group, topic)
	t.Logf("while the master is away, the slave's committed offsets for the group: %s (queue ends %v; the master's before the kill %s)",
		slaveText, ends, preKillText)

	// 2. The master returns on the same ports and data directory.
	master.start()
	restartedAt := time.Now()
	var masterText string
	var committed []int64
	if !waitUntil("waiting for the master's offsets", srOffsetsWait, func() bool {
		committed, masterText = srCommitted(masterAddr, group, topic)
		return srCovers(committed, ends)
	}) {
		_, slaveText := srCommitted(slaveAddr, group, topic)
		t.Fatalf("%v after the master's restart its committed offsets for the group are %s, short of the queue ends %v "+
			"(before the kill %s; the slave now holds %s): the offsets of the messages consumed while it was away did not reach it",
			srOffsetsWait, masterText, ends, preKillText, slaveText)
	}
	t.Logf("the restarted master's committed offsets cover every queue end %v after its start: %s",
		time.Since(restartedAt).Round(time.Millisecond), masterText)
	stopConsumer()
	afterShutdown := len(c.snapshot())
	_, shutdownText := srCommitted(masterAddr, group, topic)
	t.Logf("after the consumer's Shutdown the master holds %s", shutdownText)

	// 3. A new consumer of the group: no redelivery. Fresh messages, sent
	// after it started, show it was reading every queue beyond the old ones.
	c2 := newCollector()
	startPushConsumer(t, nsAddr, topic, c2, consumerOpts{group: group, from: consumer.ConsumeFromFirstOffset})
	time.Sleep(3 * time.Second) // let it take its queues
	p2 := newProducer(t, nsAddr)
	fresh := bodiesN("after-return-"+nonce(), 2*srQueues)
	res := sendSyncN(t, p2, topic, fresh)
	freshQueues := map[int]bool{}
	for _, r := range res {
		freshQueues[r.MessageQueue.QueueId] = true
	}
	if len(freshQueues) != srQueues {
		t.Errorf("the fresh messages went to queues %v, not all %d", keys(freshQueues), srQueues)
	}
	if !waitUntil("waiting for the new consumer", 45*time.Second, func() bool {
		got := c2.snapshot()
		for _, f := range fresh {
			if got[f] == 0 {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("the new consumer of the group did not receive the %d fresh messages within 45s: %s",
			len(fresh), compare(fresh, c2.snapshot()))
	}
	time.Sleep(time.Second)
	got := c2.snapshot()
	var redelivered []string
	for _, b := range bodies {
		if got[b] > 0 {
			redelivered = append(redelivered, b)
		}
	}
	sort.Strings(redelivered)
	if len(redelivered) > 0 {
		t.Errorf("the new consumer of the group received again %d of the %d messages the group had consumed: %s; "+
			"the master's committed offsets (%s, queue ends %v) were not those of the consumer that read them from the slave",
			len(redelivered), srMessages, abbrev(redelivered), masterText, ends)
	}
	if len(c.snapshot()) != afterShutdown {
		t.Errorf("the first consumer received messages after its Shutdown")
	}
	checkCrashes("at the end")
	t.Logf("done in %v", time.Since(testStart).Round(time.Millisecond))
}
