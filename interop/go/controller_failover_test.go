package interop

// TestControllerModeFailoverUnderLoad: a broker group in controller mode
// (three `ferromq broker` processes, one `ferromq controller`, one
// `ferromq namesrv`, all separate processes) loses no acknowledged message
// while its master is SIGKILLed repeatedly under load from the official Go
// client.
//
// Every process is started by the test on free 127.0.0.1 ports, its stdout
// and stderr are captured (printed when the test fails) and it is stopped in
// t.Cleanup with SIGTERM, then SIGKILL, through its own process handle.
// Every wait is bounded.
//
// FERROMQ_FAILOVER_KILLS sets the number of master kills (default 3).

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// ---------------------------------------------------------------------------
// The test.
// ---------------------------------------------------------------------------

func TestControllerModeFailoverUnderLoad(t *testing.T) {
	testStart := time.Now()
	captureClientLog(t)
	kills := 3
	if v := os.Getenv("FERROMQ_FAILOVER_KILLS"); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 1 {
			t.Fatalf("FERROMQ_FAILOVER_KILLS=%q: want a positive integer", v)
		}
		kills = k
	}
	bin := ferromqBin(t)
	dir := t.TempDir()
	ports := &cmPorts{t: t, used: map[int]bool{}}

	// Name server and controller.
	nsAddr := fmt.Sprintf("127.0.0.1:%d", ports.get(false))
	ns := newCMNode(t, "namesrv", nsAddr, "namesrv", "--listen", nsAddr)
	ns.start()
	ctlAddr := fmt.Sprintf("127.0.0.1:%d", ports.get(false))
	ctlConf := cmWriteConf(t, dir, "controller", cmControllerConf(ctlAddr, filepath.Join(dir, "ctl")))
	ctl := newCMNode(t, "controller", ctlAddr, "controller", "-c", ctlConf)
	ctl.start()

	// Three brokers of one group.
	var brokers []*cmNode
	var brokerAddrs []string
	for _, name := range []string{"b1", "b2", "b3"} {
		addr := fmt.Sprintf("127.0.0.1:%d", ports.get(true))
		conf := cmWriteConf(t, dir, name, cmBrokerConf(ctlAddr, nsAddr, ports.get(false)))
		b := newCMNode(t, name, addr, "broker", "-c", conf, "--data-dir", filepath.Join(dir, name), "--listen", addr)
		b.start()
		brokers = append(brokers, b)
		brokerAddrs = append(brokerAddrs, addr)
	}
	grp := newCMGroup(t, bin, ctlAddr, append([]*cmNode{ns, ctl}, brokers...), brokers)
	byAddr, checkCrashes, waitState, inSync := grp.byAddr, grp.checkCrashes, grp.waitState, grp.inSync

	began := time.Now()
	g := waitState("a master and all three brokers in the in-sync set", cmStepTimeout, inSync)
	t.Logf("group in sync after %v: %v", time.Since(began).Round(time.Millisecond), g)

	// Topic with 4 queues on the master; every broker must hold it.
	topic := uniq(t, "T")
	grp.createTopic(nsAddr, g.MasterAddress, topic)

	// Consumer, then producer.
	c := newCollector()
	startPushConsumer(t, nsAddr, topic, c, consumerOpts{from: consumer.ConsumeFromFirstOffset})
	p := newProducer(t, nsAddr, producer.WithRetry(2), producer.WithSendMsgTimeout(3*time.Second))
	load := newCMLoad()
	stopProducer := load.startLoad(t, p, topic) // its cleanup runs before the producer's Shutdown (LIFO)
	if !waitFor(30*time.Second, func() bool { _, a, _, _ := load.counts(); return a > 0 }) {
		_, _, na, last := load.counts()
		t.Fatalf("the producer got no SendOK within 30s (not acknowledged %s; last %s)", cmFormatCounts(na), last)
	}

	// Kill loop.
	var failovers, elections []time.Duration
	for k := 1; k <= kills; k++ {
		began := time.Now()
		g := waitState(fmt.Sprintf("kill %d: all three brokers in sync", k), cmStepTimeout, inSync)
		t.Logf("kill %d: in sync after %v: %v", k, time.Since(began).Round(time.Millisecond), g)
		// Let the load run on the healthy group for a moment, and make sure
		// the producer is being acknowledged before the next kill.
		time.Sleep(2 * time.Second)
		mark := time.Now()
		if !waitFor(cmStepTimeout, func() bool { _, ok := load.firstOKAfter(mark); return ok }) {
			_, _, na, last := load.counts()
			t.Fatalf("kill %d: the producer got no SendOK within %v with all three brokers in sync (%v); not acknowledged %s; last %s",
				k, cmStepTimeout, g, cmFormatCounts(na), last)
		}
		victim := byAddr(g.MasterAddress)
		if victim == nil {
			t.Fatalf("kill %d: the controller's master %s is none of the brokers %v", k, g.MasterAddress, brokerAddrs)
		}
		_, ackedBefore, _, _ := load.counts()
		killAt := time.Now()
		victim.kill()
		t.Logf("kill %d: SIGKILLed master %s (%s, id %d, epoch %d) with %d messages acknowledged so far",
			k, victim.name, victim.addr, g.MasterBrokerID, g.MasterEpoch, ackedBefore)

		// The controller elects another master.
		ng := waitState(fmt.Sprintf("kill %d: a master other than %s", k, victim.addr), cmStepTimeout, func(n *cmGroupState) bool {
			return n.MasterAddress != "" && n.MasterAddress != victim.addr && n.MasterEpoch > g.MasterEpoch
		})
		elected := time.Since(killAt)
		elections = append(elections, elected)
		t.Logf("kill %d: controller named %s master (epoch %d) %v after the kill: %v",
			k, ng.MasterAddress, ng.MasterEpoch, elected.Round(time.Millisecond), ng)

		// Failover as the client sees it: first SendOK of a send started after the kill.
		deadline := killAt.Add(cmStepTimeout)
		var okAt time.Time
		for {
			checkCrashes(fmt.Sprintf("kill %d: waiting for the producer's first SendOK after the kill", k))
			if at, ok := load.firstOKAfter(killAt); ok {
				okAt = at
				break
			}
			if time.Now().After(deadline) {
				_, _, na, last := load.counts()
				st, err := cmSyncState(bin, ctlAddr)
				t.Fatalf("kill %d: the producer got no SendOK within %v of killing master %s; not acknowledged so far %s; last: %s; controller: %v (%v)",
					k, cmStepTimeout, victim.addr, cmFormatCounts(na), last, st, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		failovers = append(failovers, okAt.Sub(killAt))
		t.Logf("kill %d: first SendOK after the kill came %v after it", k, okAt.Sub(killAt).Round(time.Millisecond))

		// Restart the killed broker: same data dir, conf and port.
		victim.start()
	}
	began = time.Now()
	g = waitState("after the last kill: all three brokers in sync", cmStepTimeout, inSync)
	t.Logf("after the last kill: in sync after %v: %v", time.Since(began).Round(time.Millisecond), g)
	time.Sleep(2 * time.Second)
	stopProducer()
	checkCrashes("after the load")

	// Every acknowledged message must reach the consumer.
	acked := load.ackedCopy()
	missing := func() []string {
		got := c.snapshot()
		var out []string
		for body := range acked {
			if got[body] == 0 {
				out = append(out, body)
			}
		}
		return out
	}
	drainStart := time.Now()
	drained := waitFor(cmDrainTimeout, func() bool { return len(missing()) == 0 })
	drainTime := time.Since(drainStart)
	if !drained {
		// Give stragglers no more time: report the figures as they are.
		t.Logf("consumer had not received every acknowledged message %v after the producer stopped", cmDrainTimeout)
	}
	time.Sleep(time.Second) // late duplicates
	got := c.snapshot()
	c.mu.Lock()
	deliveries := c.total
	c.mu.Unlock()
	lost := missing()
	sortBodies(lost)
	dupBodies, dupExtra, unackedReceived := 0, 0, 0
	var unackedBodies []string
	for body, n := range got {
		if n > 1 {
			dupBodies++
			dupExtra += n - 1
		}
		if _, ok := acked[body]; !ok {
			unackedReceived++
			unackedBodies = append(unackedBodies, body)
		}
	}
	sort.Strings(unackedBodies)
	sent, nAcked, notAcked, _ := load.counts()
	each, p50, max := cmDurations(failovers)
	elEach, elP50, elMax := cmDurations(elections)
	if samples := load.errorSamples(); samples != "" {
		t.Logf("first error of each not-acknowledged kind:\n%s", samples)
	}
	t.Logf("consumer: %d distinct bodies, %d deliveries; %d received bodies were not acknowledged to the producer %s "+
		"(a send in flight at a kill can be stored and replicated yet fail at the client: allowed); drained %v after the producer stopped",
		len(got), deliveries, unackedReceived, abbrev(unackedBodies), drainTime.Round(time.Millisecond))
	t.Logf("controller elections (kill -> new master named): each %s, p50 %v, max %v", elEach, elP50, elMax)
	t.Logf("FAILOVER FIGURES: kills=%d sent=%d acknowledged=%d not-acknowledged=%d %s lost=%d duplicates=%d (extra deliveries %d) "+
		"failover(kill->first SendOK)=%s p50=%v max=%v runtime=%v",
		kills, sent, nAcked, sent-nAcked, cmFormatCounts(notAcked), len(lost), dupBodies, dupExtra,
		each, p50, max, time.Since(testStart).Round(time.Second))

	if len(lost) > 0 {
		var lines []string
		for i, body := range lost {
			if i == 20 {
				lines = append(lines, fmt.Sprintf("  ... (%d lost in all)", len(lost)))
				break
			}
			a := acked[body]
			lines = append(lines, fmt.Sprintf("  %s: queue %d offset %d, sent %s, SendOK %s",
				body, a.queue, a.offset, a.start.Format("15:04:05.000"), a.end.Format("15:04:05.000")))
		}
		t.Errorf("%d of %d acknowledged messages never reached the consumer (lost):\n%s\nqueue max offsets now:\n%s",
			len(lost), nAcked, strings.Join(lines, "\n"), grp.queueEnds(topic))
	}
}
