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
// Faults. Each round starts with all three brokers in sync and the producer
// being acknowledged, and takes the current master away:
//   - kill: SIGKILL; the controller elects another master; the time from the
//     kill to the first SendOK of a send started after it is measured; the
//     killed broker is started again (same port, conf and data directory).
//   - pause: SIGSTOP, held past the election: the process keeps its sockets
//     but answers nothing, as in a long GC pause or a frozen VM. The fault
//     clock starts once the kernel reports it stopped. It stays stopped until
//     the controller has named another master and the producer has had a
//     SendOK of a send started after the stop (the Go client finds the new
//     master at its next route refresh, every 30 s), and one second more;
//     then SIGCONT. From the stop until it is a slave again (plus a second),
//     raw SEND_MESSAGE probes go straight to it every 100 ms on one
//     connection, as from a client with a stale route (those sent while it is
//     stopped wait in its socket): every one must be refused with
//     SERVICE_NOT_AVAILABLE (14), none taken, none left unanswered, and no
//     probe may reach the consumer. No SendOK of a send started after the
//     stop may come from it (the store host of the offset message id). The
//     resumed broker must be back in the controller's in-sync set under the
//     new master and listed by the name server as a slave.
//
// The producer and the push consumer are never restarted.
//
// FERROMQ_FAILOVER_KILLS sets the number of kill rounds (default 3),
// FERROMQ_FAILOVER_PAUSES the number of pause rounds (default kills/3, at
// least 1; 0 for none), spread between the kills (3 kills, 1 pause:
// kill, kill, pause, kill). Prints one line "FAILOVER FIGURES: ...".

import (
	"fmt"
	"math"
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
	pauses := kills / 3
	if pauses < 1 {
		pauses = 1
	}
	if v := os.Getenv("FERROMQ_FAILOVER_PAUSES"); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 0 {
			t.Fatalf("FERROMQ_FAILOVER_PAUSES=%q: want a non-negative integer", v)
		}
		pauses = p
	}
	plan := cmFaultPlan(kills, pauses)
	t.Logf("faults: %v", plan)
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

	// The rounds.
	var failovers, elections []time.Duration // kills
	var pauseElections, pauseFailovers, pausedFor, resumeToSlave []time.Duration
	var probeStreams []*probeStream
	probesRefused, probesNotRefused, ackedByPaused := 0, 0, 0
	// awaitOK: the end of the first SendOK of a send started after since,
	// waiting until since+cmStepTimeout.
	awaitOK := func(what string, since time.Time) time.Time {
		t.Helper()
		deadline := since.Add(cmStepTimeout)
		for {
			checkCrashes("waiting for " + what)
			if at, ok := load.firstOKAfter(since); ok {
				return at
			}
			if time.Now().After(deadline) {
				_, _, na, last := load.counts()
				st, err := cmSyncState(bin, ctlAddr)
				t.Fatalf("no %s within %v; not acknowledged so far %s; last: %s; controller: %v (%v)",
					what, cmStepTimeout, cmFormatCounts(na), last, st, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	pause := 0 // pause rounds so far
	for r, fault := range plan {
		round := fmt.Sprintf("round %d (%s)", r+1, fault)
		began := time.Now()
		g := waitState(round+": all three brokers in sync", cmStepTimeout, inSync)
		t.Logf("%s: in sync after %v: %v", round, time.Since(began).Round(time.Millisecond), g)
		// Let the load run on the healthy group for a moment, and make sure
		// the producer is being acknowledged before the fault.
		time.Sleep(2 * time.Second)
		mark := time.Now()
		if !waitFor(cmStepTimeout, func() bool { _, ok := load.firstOKAfter(mark); return ok }) {
			_, _, na, last := load.counts()
			t.Fatalf("%s: the producer got no SendOK within %v with all three brokers in sync (%v); not acknowledged %s; last %s",
				round, cmStepTimeout, g, cmFormatCounts(na), last)
		}
		victim := byAddr(g.MasterAddress)
		if victim == nil {
			t.Fatalf("%s: the controller's master %s is none of the brokers %v", round, g.MasterAddress, brokerAddrs)
		}
		_, ackedBefore, _, _ := load.counts()
		var faultAt time.Time
		var probes *probeStream
		if fault == "kill" {
			faultAt = time.Now()
			victim.kill()
			t.Logf("%s: SIGKILLed master %s (%s, id %d, epoch %d) with %d messages acknowledged so far",
				round, victim.name, victim.addr, g.MasterBrokerID, g.MasterEpoch, ackedBefore)
		} else {
			pause++
			faultAt = victim.pause()
			// From now until it is a slave again, writes straight to it, as
			// from a client whose route is stale. A pause lasts at most
			// cmStepTimeout (+1 s): every probe gets the broker's own answer.
			probes = startProbes(victim.addr, topic, probeOpts{
				prefix: fmt.Sprintf("probe%d", pause), interval: 100 * time.Millisecond,
				timeout: cmStepTimeout + 15*time.Second, max: 3000, oneConn: true,
			})
			t.Cleanup(probes.stop)
			probeStreams = append(probeStreams, probes)
			t.Logf("%s: paused master %s (%s, id %d, epoch %d; SIGSTOP, seen stopped) with %d messages acknowledged so far",
				round, victim.name, victim.addr, g.MasterBrokerID, g.MasterEpoch, ackedBefore)
		}

		// The controller elects another master.
		ng := waitState(fmt.Sprintf("%s: a master other than %s", round, victim.addr), cmStepTimeout, func(n *cmGroupState) bool {
			return n.MasterAddress != "" && n.MasterAddress != victim.addr && n.MasterEpoch > g.MasterEpoch
		})
		elected := time.Since(faultAt)
		t.Logf("%s: controller named %s master (epoch %d) %v after the %s: %v",
			round, ng.MasterAddress, ng.MasterEpoch, elected.Round(time.Millisecond), fault, ng)

		// Failover as the client sees it: first SendOK of a send started after the fault.
		okAt := awaitOK(fmt.Sprintf("%s: the producer's first SendOK after the %s of %s", round, fault, victim.addr), faultAt)
		t.Logf("%s: first SendOK after the %s came %v after it", round, fault, okAt.Sub(faultAt).Round(time.Millisecond))

		if fault == "kill" {
			elections = append(elections, elected)
			failovers = append(failovers, okAt.Sub(faultAt))
			// Restart the killed broker: same data dir, conf and port.
			victim.start()
			continue
		}
		pauseElections = append(pauseElections, elected)
		pauseFailovers = append(pauseFailovers, okAt.Sub(faultAt))

		// The new master takes writes a little longer while the old one is still stopped.
		time.Sleep(time.Second)
		resumedAt := time.Now()
		victim.resume()
		pausedFor = append(pausedFor, resumedAt.Sub(faultAt))
		// It must step down: back in sync under another master, and routed as a slave.
		sg := waitState(fmt.Sprintf("%s: the resumed %s in sync again, as a slave", round, victim.addr), cmStepTimeout,
			func(n *cmGroupState) bool { return inSync(n) && n.MasterAddress != victim.addr })
		inSyncAfter := time.Since(resumedAt)
		resumeToSlave = append(resumeToSlave, inSyncAfter)
		var lastRoute map[string]string
		var lastRouteErr error
		if !waitFor(cmStepTimeout, func() bool {
			lastRoute, lastRouteErr = routeBrokers(nsAddr, topic)
			if lastRouteErr != nil || lastRoute["0"] == victim.addr {
				return false
			}
			for id, a := range lastRoute {
				if a == victim.addr && id != "0" {
					return true
				}
			}
			return false
		}) {
			t.Fatalf("%s: the name server does not list the resumed %s as a slave %v after SIGCONT: brokerAddrs %v (%v)",
				round, victim.addr, cmStepTimeout, lastRoute, lastRouteErr)
		}
		t.Logf("%s: resumed %s after %v paused; in sync as a slave %v and routed as one (%v) %v after SIGCONT: %v",
			round, victim.name, resumedAt.Sub(faultAt).Round(time.Millisecond), inSyncAfter.Round(time.Millisecond),
			lastRoute, time.Since(resumedAt).Round(time.Millisecond), sg)
		time.Sleep(time.Second) // a few probes to it as a slave
		probes.stop()
		summary, _ := probes.summary()
		refused, firstRefusal, others := probes.refusals(14, faultAt)
		probesRefused += refused
		probesNotRefused += len(others)
		firstRefusalAfterResume := "none"
		if !firstRefusal.IsZero() {
			firstRefusalAfterResume = firstRefusal.Sub(resumedAt).Round(time.Millisecond).String()
		}
		t.Logf("%s: probes straight to %s: %s; first refusal %s after SIGCONT", round, victim.addr, summary, firstRefusalAfterResume)
		if len(others) > 0 {
			t.Errorf("%s: %d writes sent straight to the old master %s after its SIGSTOP were not refused with code 14 "+
				"(times from the SIGSTOP; SIGCONT at +%v):\n  %s", round, len(others), victim.addr,
				resumedAt.Sub(faultAt).Round(time.Millisecond), strings.Join(head(others, 20), "\n  "))
		}
		// No SendOK from it for a send started after the stop.
		// Brokers share 127.0.0.1 and differ by port: the store host's port names one.
		_, oldPort, _ := strings.Cut(victim.addr, ":")
		_, newPort, _ := strings.Cut(ng.MasterAddress, ":")
		var late []string
		fromNew := 0
		for body, a := range load.ackedCopy() {
			if !a.start.After(faultAt) {
				continue
			}
			host, _, err := decodeOffsetMsgID(a.msgID)
			if err != nil {
				t.Errorf("%s: %s: %v", round, body, err)
				continue
			}
			switch {
			case strings.HasSuffix(host, ":"+oldPort):
				late = append(late, fmt.Sprintf("%s (sent +%v, SendOK +%v)", body,
					a.start.Sub(faultAt).Round(time.Millisecond), a.end.Sub(faultAt).Round(time.Millisecond)))
			case strings.HasSuffix(host, ":"+newPort):
				fromNew++
			}
		}
		t.Logf("%s: SendOKs of sends started after the SIGSTOP so far: %d stored by the new master %s, %d by the paused one",
			round, fromNew, ng.MasterAddress, len(late))
		if fromNew == 0 { // the first SendOK above came from it: the store hosts must say so
			t.Errorf("%s: no SendOK since the SIGSTOP has a store host with the new master's port %s: the check is blind", round, newPort)
		}
		ackedByPaused += len(late)
		if len(late) > 0 {
			sort.Strings(late)
			t.Errorf("%s: %d SendOKs from the paused master %s for sends started after its SIGSTOP (SIGCONT at +%v): %s",
				round, len(late), victim.addr, resumedAt.Sub(faultAt).Round(time.Millisecond), strings.Join(head(late, 20), ", "))
		}
	}
	began = time.Now()
	g = waitState("after the last round: all three brokers in sync", cmStepTimeout, inSync)
	t.Logf("after the last round: in sync after %v: %v", time.Since(began).Round(time.Millisecond), g)
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
	var unackedBodies, probesConsumed []string
	for body, n := range got {
		if n > 1 {
			dupBodies++
			dupExtra += n - 1
		}
		if strings.HasPrefix(body, "probe") {
			probesConsumed = append(probesConsumed, body)
			continue
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
	probesSent := 0
	for _, ps := range probeStreams {
		probesSent += ps.count()
	}
	pElEach, _, _ := cmDurations(pauseElections)
	pEach, _, _ := cmDurations(pauseFailovers)
	pausedEach, _, _ := cmDurations(pausedFor)
	slaveEach, _, _ := cmDurations(resumeToSlave)
	t.Logf("FAILOVER FIGURES: kills=%d pauses=%d faults=%s sent=%d acknowledged=%d not-acknowledged=%d %s lost=%d duplicates=%d (extra deliveries %d) "+
		"failover(kill->first SendOK)=%s p50=%v max=%v "+
		"pause->new-master=%s pause->first-SendOK=%s paused-for=%s resume->in-sync-as-slave=%s "+
		"probes-to-paused-master=%d refused(14)=%d not-refused=%d probes-consumed=%d acked-by-paused-master=%d runtime=%v",
		kills, pauses, strings.Join(plan, ","), sent, nAcked, sent-nAcked, cmFormatCounts(notAcked), len(lost), dupBodies, dupExtra,
		each, p50, max,
		pElEach, pEach, pausedEach, slaveEach,
		probesSent, probesRefused, probesNotRefused, len(probesConsumed), ackedByPaused, time.Since(testStart).Round(time.Second))
	if len(probesConsumed) > 0 {
		sortBodies(probesConsumed)
		t.Errorf("%d probes sent only to a paused or resumed old master reached the consumer: %s",
			len(probesConsumed), strings.Join(head(probesConsumed, 20), ", "))
	}

	if len(lost) > 0 {
		t.Errorf("%d of %d acknowledged messages never reached the consumer (lost):\n%s\nqueue max offsets now:\n%s",
			len(lost), nAcked, cmLostLines(lost, acked), grp.queueEnds(topic))
	}
}

// cmFaultPlan: kills "kill" rounds and pauses "pause" rounds, the pauses
// spread between the kills (pause j after kill round(j*kills/(pauses+1)),
// at least the first): 3, 1 -> kill kill pause kill.
func cmFaultPlan(kills, pauses int) []string {
	after := map[int]int{} // kill number -> pauses right after it
	for j := 1; j <= pauses; j++ {
		k := int(math.Round(float64(j*kills) / float64(pauses+1)))
		if k < 1 {
			k = 1
		}
		if k > kills {
			k = kills
		}
		after[k]++
	}
	var plan []string
	for k := 1; k <= kills; k++ {
		plan = append(plan, "kill")
		for i := 0; i < after[k]; i++ {
			plan = append(plan, "pause")
		}
	}
	return plan
}
