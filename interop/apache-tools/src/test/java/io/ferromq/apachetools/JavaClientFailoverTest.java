package io.ferromq.apachetools;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Predicate;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.exception.MQClientException;
import org.apache.rocketmq.client.impl.MQClientAPIImpl;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageConst;
import org.apache.rocketmq.common.message.MessageDecoder;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.common.topic.TopicValidator;
import org.apache.rocketmq.remoting.RemotingClient;
import org.apache.rocketmq.remoting.protocol.RemotingCommand;
import org.apache.rocketmq.remoting.protocol.RequestCode;
import org.apache.rocketmq.remoting.protocol.ResponseCode;
import org.apache.rocketmq.remoting.protocol.body.BrokerReplicasInfo.ReplicasInfo;
import org.apache.rocketmq.remoting.protocol.header.SendMessageRequestHeader;
import org.apache.rocketmq.remoting.protocol.route.BrokerData;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Apache's Java client (rocketmq-client 5.5.0: {@link DefaultMQProducer}, {@link DefaultMQPushConsumer})
 * keeps producing and consuming through repeated master failures of a FerroMQ broker group in
 * controller mode, without being restarted, and loses no acknowledged message.
 *
 * <p>One {@code ferromq controller}, one {@code ferromq namesrv} and three {@code ferromq broker}
 * processes of one group ({@code enableControllerMode=true}, {@code allAckInSyncStateSet=true},
 * {@code brokerId=-1}), every one on 127.0.0.1 and started here; the group's state is read from
 * the controller with Apache's admin API (CONTROLLER_GET_SYNC_STATE_DATA). A producer thread
 * sends synchronously without pause, each message with its own body and key; a push consumer
 * (clustering, from the first offset) records every body it receives. Five rounds ({@link #FAULTS}:
 * kill, pause, kill, pause, kill) each take the current master away while all three are in sync:
 *
 * <ul>
 * <li>kill: SIGKILL; the controller elects another master, the time from the kill to the first
 * SEND_OK of a send started after it is measured, and the killed broker is started again on the
 * same port and data directory;</li>
 * <li>pause: SIGSTOP, for longer than the election ({@code controllerHeartBeatTimeoutMills=3000}):
 * the master keeps its connections but answers nothing, as in a long GC pause or a frozen VM. The
 * controller elects another master once its heartbeats stop; once the producer has a SEND_OK from
 * the new master and a second more, SIGCONT. The resumed broker must step down: from the SIGSTOP
 * until it is a slave again, raw SEND_MESSAGE probes go straight to it ({@link Probes}, as from a
 * client with a stale route; those sent while it is stopped wait in its socket), and it must
 * refuse every one with code 14 and store none (no probe may reach the consumer); it must be back
 * in the controller's in-sync set under the new master and registered on the name server as a
 * slave.</li>
 * </ul>
 *
 * <p>Every round starts with all three in sync, and the last one is followed by that too. Then the
 * producer stops and every acknowledged body must reach the consumer; duplicates are counted, not
 * failed (delivery is at least once). The figures are printed in one line starting {@code JAVA FAILOVER FIGURES:},
 * with the slowest delivery (SEND_OK to first receipt) and the number of received messages that
 * were never acknowledged and whose place in their queue was later acknowledged for another
 * message (the consumer was given a record the group did not keep). A lost message's report names
 * what the consumer was given from its place instead.
 *
 * <p>Debugging: {@code -Djf.showOutput=true} prints every process's output even when the test
 * passes (a failure always prints it); {@code -Djf.keepWork=true} keeps the data directories.
 * With {@code -Dtarget.namesrv} (the suite against an external Apache install) the class is skipped.
 */
@Timeout(value = 600, unit = TimeUnit.SECONDS)
class JavaClientFailoverTest {

    static final String CLUSTER = "DefaultCluster";
    static final String BROKER_NAME = "group-java";
    /** What happens to the master in each round, in this order. */
    enum Fault {
        /** SIGKILL; the broker is started again once another master is elected. */
        KILL,
        /** SIGSTOP until another master is elected and acknowledging, then SIGCONT. */
        PAUSE
    }

    static final List<Fault> FAULTS = List.of(Fault.KILL, Fault.PAUSE, Fault.KILL, Fault.PAUSE, Fault.KILL);
    /** A paused master stays stopped this much longer once the new master acknowledged a send. */
    static final long PAUSE_EXTRA_MS = 1_000;
    /** Every wait of a round: an election, the first SEND_OK, the group back in sync. */
    static final long STEP_TIMEOUT_MS = 90_000;
    /** The consumer catching up once the producer stopped. */
    static final long DRAIN_TIMEOUT_MS = 120_000;
    /** The producer stops on its own after this long, whatever the test is doing. */
    static final long PRODUCER_MAX_MS = 480_000;
    /** A broker started again at once on its old port may find the port not yet free. */
    static final int RESTART_ATTEMPTS = 5;

    private ChildProcesses processes;
    private Clients clients;
    private Thread producerThread;
    private volatile boolean stopProducing;

    @BeforeAll
    static void notAgainstAnExternalInstall() {
        Assumptions.assumeFalse(FerroMQServer.external(),
            "-Dtarget.namesrv is set: this class starts its own FerroMQ controller, name server and brokers");
    }

    @BeforeEach
    void setUp() throws IOException {
        processes = new ChildProcesses("jf", "JavaClientFailoverTest");
    }

    @AfterEach
    void tearDown() throws InterruptedException {
        stopProducer();
        if (clients != null) {
            clients.close();
            clients = null;
        }
        processes.close();
    }

    @Test
    void javaClientKeepsSendingAndConsumingThroughMasterKillsAndPauses() throws Throwable {
        processes.diagnoseOnFailure(() -> {
            long testStart = System.nanoTime();
            String ns = processes.startNamesrv();
            String ctl = processes.startController();
            Map<String, ChildProcesses.Proc> brokers = new HashMap<>();
            for (String name : List.of("b1", "b2", "b3")) {
                int port = processes.brokerPort();
                brokers.put("127.0.0.1:" + port, startBroker(name, port, ns, ctl));
            }
            Set<String> brokerAddrs = brokers.keySet();

            clients = new Clients(ns);
            DefaultMQAdminExt admin = clients.admin();
            GroupWatch group = new GroupWatch(admin, ctl);
            Predicate<ReplicasInfo> allInSync = r -> brokerAddrs.contains(r.getMasterAddress())
                && ControllerState.aliveAddresses(r.getInSyncReplicas()).equals(brokerAddrs);

            ReplicasInfo state = group.await("a master and all three brokers in the in-sync set", allInSync);

            // On the master; the slaves copy its topic table every syncBrokerMetadataPeriod, and
            // each must have it before it can be elected and take the sends.
            String topic = "JavaFailover_" + Clients.uid();
            admin.createAndUpdateTopicConfig(state.getMasterAddress(), QueuePulls.topicConfig(topic));
            for (String addr : brokerAddrs) {
                Clients.awaitOrFail(addr + " to hold topic " + topic, 30_000, () -> {
                    try {
                        return admin.examineTopicConfig(addr, topic) != null;
                    } catch (Exception e) {
                        return false;
                    }
                });
            }

            Received received = new Received();
            DefaultMQPushConsumer consumer = clients.pushConsumer("JavaFailoverCG_" + Clients.uid(), topic,
                (msgs, context) -> {
                    for (MessageExt m : msgs) {
                        received.add(m);
                    }
                    return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
                });
            clients.start(consumer);

            SendLog sends = new SendLog();
            startProducer(startedProducer(), topic, sends);
            awaitOkAfter(sends, Long.MIN_VALUE, "the producer's first SEND_OK");

            // A second client of its own (own connections) for the raw probes of the paused master.
            RemotingClient probeClient = clients.admin().getDefaultMQAdminExtImpl().getMqClientInstance()
                .getMQClientAPIImpl().getRemotingClient();
            AtomicLong probeSeq = new AtomicLong();
            List<Probes> probeRounds = new ArrayList<>();
            List<String> problems = new ArrayList<>();

            List<Long> killElectionsMs = new ArrayList<>();
            List<Long> killFailoversMs = new ArrayList<>();
            List<Long> pauseElectionsMs = new ArrayList<>();
            List<Long> pauseFailoversMs = new ArrayList<>();
            List<Long> pausedForMs = new ArrayList<>();
            List<Long> resumeToInSyncMs = new ArrayList<>();
            List<Long> resumeToSlaveRouteMs = new ArrayList<>();
            for (int k = 1; k <= FAULTS.size(); k++) {
                Fault fault = FAULTS.get(k - 1);
                String round = "round " + k + " (" + fault.name().toLowerCase() + ")";
                ReplicasInfo before = group.await(round + ": all three brokers in sync", allInSync);
                // a moment of load on the healthy group, and proof that it is acknowledging
                Thread.sleep(2_000);
                awaitOkAfter(sends, System.nanoTime(), round + ": a SEND_OK with all three in sync");

                String victimAddr = before.getMasterAddress();
                ChildProcesses.Proc victim = brokers.get(victimAddr);
                long ackedBefore = sends.acked();
                long faultAt = System.nanoTime();
                Probes probes = null;
                if (fault == Fault.KILL) {
                    victim.kill();
                } else {
                    // from when it is seen stopped: a send started while kill(1) runs may still succeed
                    faultAt = victim.pause();
                    // From now until it is a slave again, writes go straight to it, as from a
                    // client whose route is stale; those sent while it is stopped wait in its socket.
                    probes = new Probes(probeClient, victimAddr, topic, probeSeq, faultAt);
                    probeRounds.add(probes);
                    probes.start();
                }

                ReplicasInfo after = group.await(round + ": a master other than " + victimAddr,
                    r -> r.getMasterAddress() != null && !r.getMasterAddress().isEmpty()
                        && !victimAddr.equals(r.getMasterAddress()) && r.getMasterEpoch() > before.getMasterEpoch());
                long electedMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - faultAt);
                long firstOk = awaitOkAfter(sends, faultAt, round + ": the first SEND_OK after the fault on " + victimAddr);
                long failoverMs = TimeUnit.NANOSECONDS.toMillis(firstOk - faultAt);
                (fault == Fault.KILL ? killElectionsMs : pauseElectionsMs).add(electedMs);
                (fault == Fault.KILL ? killFailoversMs : pauseFailoversMs).add(failoverMs);
                System.out.printf("[jf] %s at +%d ms: %s master %s (%s, epoch %d) with %d acknowledged; %s"
                        + " master (epoch %d) %d ms later; first SEND_OK %d ms after the fault%n",
                    round, TimeUnit.NANOSECONDS.toMillis(faultAt - testStart),
                    fault == Fault.KILL ? "SIGKILLed" : "paused (SIGSTOP)", victim.name, victimAddr,
                    before.getMasterEpoch(), ackedBefore, after.getMasterAddress(), after.getMasterEpoch(), electedMs,
                    failoverMs);

                if (fault == Fault.KILL) {
                    victim.restart(ChildProcesses.FERRO_READY_MS, RESTART_ATTEMPTS);
                    continue;
                }
                // The new master takes writes a little longer while the old one is still stopped.
                Thread.sleep(PAUSE_EXTRA_MS);
                long resumedAt = System.nanoTime();
                victim.resume();
                probes.resumedAt(resumedAt);
                pausedForMs.add(TimeUnit.NANOSECONDS.toMillis(resumedAt - faultAt));
                // It must step down: refuse writes (the probes) and follow the new master.
                group.await(round + ": the resumed " + victimAddr + " in sync again, as a slave",
                    r -> allInSync.test(r) && !victimAddr.equals(r.getMasterAddress()));
                resumeToInSyncMs.add(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - resumedAt));
                String[] lastRoute = {"nothing read yet"};
                boolean slaveRoute = Clients.await(STEP_TIMEOUT_MS, () -> {
                    Map<Long, String> addrs = registered(admin, lastRoute);
                    return addrs != null && !victimAddr.equals(addrs.get(0L)) && addrs.containsValue(victimAddr);
                });
                if (!slaveRoute) {
                    fail(round + ": the name server does not list the resumed " + victimAddr + " as a slave "
                        + STEP_TIMEOUT_MS + " ms after SIGCONT: " + lastRoute[0]);
                }
                resumeToSlaveRouteMs.add(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - resumedAt));
                System.out.printf("[jf] %s: resumed %s after %d ms paused; in sync as a slave %d ms and registered"
                        + " as one (%s) %d ms after SIGCONT%n", round, victim.name, pausedForMs.get(pausedForMs.size() - 1),
                    resumeToInSyncMs.get(resumeToInSyncMs.size() - 1), lastRoute[0],
                    resumeToSlaveRouteMs.get(resumeToSlaveRouteMs.size() - 1));
                Thread.sleep(1_000); // a few probes to it as a slave
                probes.stop();
                System.out.println("[jf] " + round + ": probes straight to " + victimAddr + ": " + probes.summary());
                problems.addAll(probes.violations(round));
            }
            group.await("after the last round: all three brokers in sync", allInSync);
            Thread.sleep(2_000);
            stopProducer();
            processes.assertNoneCrashed("after the load");

            Map<String, SendLog.Ack> acked = sends.ackedCopy();
            long drainStart = System.nanoTime();
            boolean drained = Clients.await(DRAIN_TIMEOUT_MS, () -> received.missing(acked.keySet()).isEmpty());
            long drainMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - drainStart);
            Thread.sleep(1_000); // late duplicates
            List<String> lost = received.missing(acked.keySet());
            Map<String, Integer> counts = received.copy();
            long duplicateBodies = counts.values().stream().filter(n -> n > 1).count();
            long extraDeliveries = counts.values().stream().mapToLong(n -> n - 1).sum();
            Map<String, String> ackedAtPosition = new HashMap<>();
            acked.forEach((body, a) -> ackedAtPosition.put(a.queue() + "@" + a.offset(), body));
            List<String> receivedNotAcked = new ArrayList<>();
            // A delivered message whose place in its queue now holds another, acknowledged one: the
            // consumer was given a record that the group did not keep.
            int overwritten = 0;
            for (String body : counts.keySet()) {
                if (!acked.containsKey(body)) {
                    Received.Delivery d = received.first(body);
                    String ackedThere = ackedAtPosition.get(d.queue() + "@" + d.offset());
                    overwritten += ackedThere == null ? 0 : 1;
                    receivedNotAcked.add(body + " (queue " + d.queue() + ", offset " + d.offset() + ", stored by "
                        + d.storeHost() + (ackedThere == null ? "" : "; SEND_OK there later for " + ackedThere) + ")");
                }
            }
            String slowest = "none";
            long maxLagMs = 0;
            for (Map.Entry<String, SendLog.Ack> e : acked.entrySet()) {
                Received.Delivery d = received.first(e.getKey());
                long lagMs = d == null ? 0 : TimeUnit.NANOSECONDS.toMillis(d.atNanos() - e.getValue().endNanos());
                if (lagMs > maxLagMs) {
                    maxLagMs = lagMs;
                    slowest = e.getKey() + " (queue " + e.getValue().queue() + ", offset " + e.getValue().offset()
                        + ", SEND_OK at +" + TimeUnit.NANOSECONDS.toMillis(e.getValue().endNanos() - testStart) + " ms)";
                }
            }
            List<String> probesStored = new ArrayList<>();
            for (String body : counts.keySet()) {
                if (body.startsWith(Probes.PREFIX)) {
                    Received.Delivery d = received.first(body);
                    probesStored.add(body + " (queue " + d.queue() + ", offset " + d.offset() + ", stored by "
                        + d.storeHost() + ")");
                }
            }
            long probesSent = probeRounds.stream().mapToLong(Probes::sent).sum();
            long probesRefused = probeRounds.stream().mapToLong(Probes::refused).sum();
            long probesTaken = probeRounds.stream().mapToLong(Probes::taken).sum();
            long probesOther = probeRounds.stream().mapToLong(Probes::otherCode).sum();
            long probesUnanswered = probeRounds.stream().mapToLong(Probes::unanswered).sum();
            List<Long> resumeToRefusalMs = probeRounds.stream().map(Probes::resumeToFirstRefusalMs).toList();
            List<Long> allFailovers = new ArrayList<>(killFailoversMs);
            allFailovers.addAll(pauseFailoversMs);

            System.out.println("[jf] first answer of each kind other than SEND_OK: " + sends.samples());
            System.out.printf("[jf] consumer: %d distinct bodies, %d deliveries; not acknowledged to the producer"
                    + " (a send in flight at a fault may be stored yet fail at the client): %s; %s %d ms after the"
                    + " producer stopped%n", counts.size(), received.deliveries(), receivedNotAcked,
                drained ? "caught up" : "still missing messages", drainMs);
            System.out.printf("[jf] slowest delivery: %s, received %d ms after its SEND_OK%n", slowest, maxLagMs);
            System.out.printf("JAVA FAILOVER FIGURES: faults=%s kills=%d pauses=%d sent=%d acked=%d not-acked=%d %s lost=%d"
                    + " duplicates=%d (extra deliveries %d) delivered-then-overwritten=%d"
                    + " elections(kill->new master)=%s ms failover(kill->first SEND_OK)=%s ms"
                    + " elections(pause->new master)=%s ms failover(pause->first SEND_OK)=%s ms paused-for=%s ms"
                    + " resume->first-refusal(14)=%s ms resume->in-sync-as-slave=%s ms resume->registered-as-slave=%s ms"
                    + " probes-to-paused-master=%d refused(14)=%d taken=%d other-code=%d unanswered=%d stored=%d"
                    + " failover p50=%d max=%d max-delivery-lag=%d ms runtime=%d s%n",
                FAULTS, killElectionsMs.size(), pauseElectionsMs.size(), sends.sent(), acked.size(),
                sends.sent() - acked.size(), sends.notAckedByKind(), lost.size(), duplicateBodies, extraDeliveries,
                overwritten, killElectionsMs, killFailoversMs, pauseElectionsMs, pauseFailoversMs, pausedForMs,
                resumeToRefusalMs, resumeToInSyncMs, resumeToSlaveRouteMs, probesSent, probesRefused, probesTaken,
                probesOther, probesUnanswered, probesStored.size(), median(allFailovers),
                allFailovers.stream().mapToLong(Long::longValue).max().orElse(0), maxLagMs,
                TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - testStart));

            if (!lost.isEmpty()) {
                problems.add(0, lost.size() + " of " + acked.size() + " acknowledged messages never reached the consumer: "
                    + describeLost(lost, acked, received) + "; queue max offsets now: "
                    + maxOffsets(admin, brokerAddrs, topic));
            }
            if (!probesStored.isEmpty()) {
                problems.add(probesStored.size() + " probes sent only to a paused or resumed old master reached the"
                    + " consumer (it stored writes after its replacement was elected): "
                    + probesStored.subList(0, Math.min(20, probesStored.size())));
            }
            if (!problems.isEmpty()) {
                fail(String.join("\n", problems));
            }
        });
    }

    /**
     * The brokers of {@link #BROKER_NAME} the name server lists (id to address: the master is id 0),
     * or null; {@code last[0]} describes the answer or the error.
     */
    private static Map<Long, String> registered(DefaultMQAdminExt admin, String[] last) {
        try {
            BrokerData bd = admin.examineBrokerClusterInfo().getBrokerAddrTable().get(BROKER_NAME);
            last[0] = bd == null ? "no " + BROKER_NAME + " in the cluster info" : "brokerAddrs " + bd.getBrokerAddrs();
            return bd == null ? null : new TreeMap<>(bd.getBrokerAddrs());
        } catch (Exception e) {
            last[0] = e.toString();
            return null;
        }
    }

    // ------------------------------------------------------------------ processes

    /** A FerroMQ broker of {@link #BROKER_NAME} in controller mode, shaped as interop/go's failover test. */
    private ChildProcesses.Proc startBroker(String name, int port, String ns, String ctl) throws Exception {
        String conf = String.join("\n",
            "brokerClusterName=" + CLUSTER,
            "brokerName=" + BROKER_NAME,
            "brokerId=-1",
            "enableControllerMode=true",
            "controllerAddr=" + ctl,
            "namesrvAddr=" + ns,
            "allAckInSyncStateSet=true",
            "haListenPort=" + processes.freePort(),
            // a slave checks its master (and copies its topic table) every second, not every 5 s
            "syncBrokerMetadataPeriod=1000",
            // a master that stops heartbeating without closing its connection is replaced after 3 s
            "controllerHeartBeatTimeoutMills=3000",
            "");
        return processes.startFerroBroker(name, processes.work().resolve(name), port, conf);
    }

    // ------------------------------------------------------------------ producing

    /** The producer, tuned as a user who wants fast failover would tune it. */
    private DefaultMQProducer startedProducer() throws MQClientException {
        DefaultMQProducer producer = new DefaultMQProducer("JavaFailoverPG_" + Clients.uid());
        clients.configure(producer, producer.getProducerGroup());
        // The client re-reads routes every 30 s by default, so it would keep sending to the dead
        // master's address for up to 30 s; a user who wants failover in seconds polls every second.
        producer.setPollNameServerInterval(1_000);
        // Apache's defaults (Clients.configure sets no retries and 5 s for the single-broker
        // tests): a send whose connection broke is tried twice more within 3 s in all.
        producer.setRetryTimesWhenSendFailed(2);
        producer.setSendMsgTimeout(3_000);
        producer.start();
        clients.onClose(producer::shutdown);
        return producer;
    }

    /** Sends m-0, m-1, ... synchronously until {@link #stopProducer()} or {@link #PRODUCER_MAX_MS}. */
    private void startProducer(DefaultMQProducer producer, String topic, SendLog sends) {
        producerThread = new Thread(() -> {
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(PRODUCER_MAX_MS);
            // bounded by stopProducing and the deadline
            for (long n = 0; !stopProducing && System.nanoTime() < deadline; n++) {
                String body = "m-" + n;
                Message m = new Message(topic, "TagA", body.getBytes(StandardCharsets.UTF_8));
                m.setKeys(body);
                long start = System.nanoTime();
                boolean ok;
                try {
                    ok = sends.record(body, start, producer.send(m));
                } catch (Exception e) {
                    ok = sends.record(body, start, e);
                }
                if (!ok) {
                    // no spinning while the group has no reachable master
                    try {
                        Thread.sleep(50);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            }
        }, "jf-producer");
        producerThread.setDaemon(true);
        producerThread.start();
    }

    /**
     * Waits up to {@link #STEP_TIMEOUT_MS} for a SEND_OK of a send started after {@code nanos};
     * returns when it came back. Fails if a process crashed meanwhile.
     */
    private long awaitOkAfter(SendLog sends, long nanos, String what) throws InterruptedException {
        boolean ok = Clients.await(STEP_TIMEOUT_MS, () -> {
            processes.assertNoneCrashed("waiting for " + what);
            return sends.firstOkAfter(nanos) >= 0;
        });
        if (!ok) {
            fail("timed out after " + STEP_TIMEOUT_MS + " ms waiting for " + what + "; " + sends.summary());
        }
        return sends.firstOkAfter(nanos);
    }

    private void stopProducer() throws InterruptedException {
        stopProducing = true;
        if (producerThread != null) {
            // a send takes at most sendMsgTimeout (3 s)
            producerThread.join(30_000);
            if (producerThread.isAlive()) {
                fail("the producer thread did not stop within 30 s");
            }
            producerThread = null;
        }
    }

    /** What the producer sent and how each send ended; written by the producer thread only. */
    static final class SendLog {
        record Ack(int queue, long offset, long endNanos) {
        }

        private long sent;
        private final Map<String, Ack> acked = new HashMap<>();
        /** Start and end of each SEND_OK in send order; the producer is one thread, so starts ascend. */
        private final List<long[]> okTimes = new ArrayList<>();
        private final Map<String, Integer> notAcked = new TreeMap<>();
        private final Map<String, String> firstOfKind = new TreeMap<>();
        private String lastNotAcked = "none";

        synchronized boolean record(String body, long startNanos, SendResult r) {
            long end = System.nanoTime();
            sent++;
            if (r.getSendStatus() == SendStatus.SEND_OK) {
                acked.put(body, new Ack(r.getMessageQueue().getQueueId(), r.getQueueOffset(), end));
                okTimes.add(new long[] {startNanos, end});
                return true;
            }
            notAcked(body, "status " + r.getSendStatus(), r.toString());
            return false;
        }

        synchronized boolean record(String body, long startNanos, Exception e) {
            sent++;
            // the client's messages go on with a line pointing to its FAQ
            notAcked(body, PartitionClient.errorKind(e), e.toString().lines().findFirst().orElse(""));
            return false;
        }

        private void notAcked(String body, String kind, String text) {
            notAcked.merge(kind, 1, Integer::sum);
            firstOfKind.putIfAbsent(kind, body + ": " + text);
            lastNotAcked = kind + " (" + body + ")";
        }

        /** When the first SEND_OK of a send started after {@code nanos} came back, or -1. */
        synchronized long firstOkAfter(long nanos) {
            int lo = 0;
            int hi = okTimes.size();
            while (lo < hi) {
                int mid = (lo + hi) >>> 1;
                if (okTimes.get(mid)[0] > nanos) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            return lo < okTimes.size() ? okTimes.get(lo)[1] : -1;
        }

        synchronized long sent() {
            return sent;
        }

        synchronized long acked() {
            return acked.size();
        }

        synchronized Map<String, Ack> ackedCopy() {
            return new HashMap<>(acked);
        }

        synchronized Map<String, Integer> notAckedByKind() {
            return new TreeMap<>(notAcked);
        }

        synchronized Map<String, String> samples() {
            return new TreeMap<>(firstOfKind);
        }

        synchronized String summary() {
            return "sent " + sent + ", acknowledged " + acked.size() + ", not acknowledged " + notAcked
                + ", last not acknowledged: " + lastNotAcked;
        }
    }

    // ------------------------------------------------------------------ consuming

    /** Every body the consumer received, with how often, and when and from where first. */
    static final class Received {
        /** The first delivery of a body: when, and where the broker that stored it put it. */
        record Delivery(long atNanos, int queue, long offset, String storeHost) {
        }

        private final Map<String, Integer> counts = new ConcurrentHashMap<>();
        private final Map<String, Delivery> firstDeliveries = new ConcurrentHashMap<>();
        private final AtomicLong deliveries = new AtomicLong();

        void add(MessageExt m) {
            String body = new String(m.getBody(), StandardCharsets.UTF_8);
            firstDeliveries.putIfAbsent(body,
                new Delivery(System.nanoTime(), m.getQueueId(), m.getQueueOffset(), String.valueOf(m.getStoreHost())));
            counts.merge(body, 1, Integer::sum);
            deliveries.incrementAndGet();
        }

        /** The first delivery of {@code body}, or null. */
        Delivery first(String body) {
            return firstDeliveries.get(body);
        }

        /** The bodies first delivered from {@code queue} at {@code offset}, with where they came from. */
        List<String> deliveredAt(int queue, long offset) {
            List<String> out = new ArrayList<>();
            firstDeliveries.forEach((body, d) -> {
                if (d.queue() == queue && d.offset() == offset) {
                    out.add(body + " (stored by " + d.storeHost() + ")");
                }
            });
            return out;
        }

        /** The bodies of {@code expected} not received yet, in send order. */
        List<String> missing(Set<String> expected) {
            List<String> out = new ArrayList<>();
            for (String body : expected) {
                if (!counts.containsKey(body)) {
                    out.add(body);
                }
            }
            out.sort((a, b) -> Long.compare(sequence(a), sequence(b)));
            return out;
        }

        Map<String, Integer> copy() {
            return new HashMap<>(counts);
        }

        long deliveries() {
            return deliveries.get();
        }

        private static long sequence(String body) {
            return Long.parseLong(body.substring(body.indexOf('-') + 1));
        }
    }

    // ------------------------------------------------------------------ probing a paused master

    /**
     * Raw SEND_MESSAGE requests (code 10, as the producer sends them) straight to one broker, one
     * every {@link #INTERVAL_MS} on one connection, from the moment it was stopped until it is a
     * slave again, each with its own body ({@value #PREFIX}N) and every answer kept. The ones sent
     * while it is stopped wait in its socket and are read once it continues, when its lease with
     * the controller has long run out: it must refuse every one with SERVICE_NOT_AVAILABLE (14)
     * and store none. SUCCESS would be a second writer; FLUSH_SLAVE_TIMEOUT (12) or another code
     * after storing would leave a record the consumer could see; no answer within
     * {@link #TIMEOUT_MS} leaves the client not knowing.
     */
    static final class Probes {
        static final String PREFIX = "probe-";
        static final long INTERVAL_MS = 25;
        /** Longer than any pause: every probe gets the broker's own answer. */
        static final long TIMEOUT_MS = 60_000;
        /** At most this many per round (100 s of probing). */
        static final int MAX = 4_000;

        private final RemotingClient client;
        private final String addr;
        private final String topic;
        private final AtomicLong seq;
        private final long pausedAt;
        private volatile long resumedAt;
        private volatile boolean stopping;
        private Thread thread;
        private final List<CompletableFuture<?>> pending = Collections.synchronizedList(new ArrayList<>());
        private final AtomicLong sent = new AtomicLong();
        private final AtomicLong refused = new AtomicLong();
        private final AtomicLong taken = new AtomicLong();
        private final AtomicLong otherCode = new AtomicLong();
        private final AtomicLong unanswered = new AtomicLong();
        private final AtomicLong firstRefusalNanos = new AtomicLong(Long.MAX_VALUE);
        private final Map<String, Integer> kinds = Collections.synchronizedMap(new TreeMap<>());
        private final List<String> bad = Collections.synchronizedList(new ArrayList<>());

        Probes(RemotingClient client, String addr, String topic, AtomicLong seq, long pausedAt) {
            this.client = client;
            this.addr = addr;
            this.topic = topic;
            this.seq = seq;
            this.pausedAt = pausedAt;
        }

        void start() {
            thread = new Thread(() -> {
                // bounded by stopping and MAX
                for (int i = 0; !stopping && i < MAX; i++) {
                    String body = PREFIX + seq.getAndIncrement();
                    long at = System.nanoTime();
                    CompletableFuture<RemotingCommand> f;
                    try {
                        f = client.invoke(addr, request(body), TIMEOUT_MS);
                    } catch (Exception e) {
                        f = CompletableFuture.failedFuture(e);
                    }
                    sent.incrementAndGet();
                    pending.add(f.whenComplete((r, e) -> record(body, at, r, e)));
                    try {
                        Thread.sleep(INTERVAL_MS);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            }, "jf-probes-" + addr);
            thread.setDaemon(true);
            thread.start();
        }

        void resumedAt(long nanos) {
            resumedAt = nanos;
        }

        /** Stops sending and waits (bounded) for the answers still due. */
        void stop() throws InterruptedException {
            stopping = true;
            thread.join(5_000);
            CompletableFuture<?>[] all;
            synchronized (pending) {
                all = pending.toArray(new CompletableFuture<?>[0]);
            }
            try {
                CompletableFuture.allOf(all).get(TIMEOUT_MS + 5_000, TimeUnit.MILLISECONDS);
            } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
                // each one's outcome is recorded on its own
            }
        }

        private RemotingCommand request(String body) {
            SendMessageRequestHeader h = new SendMessageRequestHeader();
            h.setProducerGroup("JavaFailoverProbe");
            h.setTopic(topic);
            h.setDefaultTopic(TopicValidator.AUTO_CREATE_TOPIC_KEY_TOPIC);
            h.setDefaultTopicQueueNums(4);
            h.setQueueId(0);
            h.setSysFlag(0);
            h.setBornTimestamp(System.currentTimeMillis());
            h.setFlag(0);
            h.setProperties(MessageDecoder.messageProperties2String(
                Map.of(MessageConst.PROPERTY_KEYS, body, MessageConst.PROPERTY_WAIT_STORE_MSG_OK, "true")));
            h.setReconsumeTimes(0);
            h.setUnitMode(false);
            h.setBatch(false);
            RemotingCommand req = RemotingCommand.createRequestCommand(RequestCode.SEND_MESSAGE, h);
            req.setBody(body.getBytes(StandardCharsets.UTF_8));
            return req;
        }

        private void record(String body, long sentAt, RemotingCommand r, Throwable e) {
            long now = System.nanoTime();
            String when = "sent +" + TimeUnit.NANOSECONDS.toMillis(sentAt - pausedAt) + " ms after SIGSTOP, answered "
                + (resumedAt == 0 ? "before SIGCONT" : TimeUnit.NANOSECONDS.toMillis(now - resumedAt) + " ms after SIGCONT");
            if (e != null) {
                Throwable c = e instanceof java.util.concurrent.CompletionException && e.getCause() != null ? e.getCause() : e;
                unanswered.incrementAndGet();
                kinds.merge("no answer: " + c.getClass().getSimpleName(), 1, Integer::sum);
                // a write the broker neither took nor refused: the client cannot tell what became of it
                bad.add(body + " not answered (" + when + "): " + c);
                return;
            }
            kinds.merge("code " + r.getCode(), 1, Integer::sum);
            if (r.getCode() == ResponseCode.SERVICE_NOT_AVAILABLE) {
                refused.incrementAndGet();
                firstRefusalNanos.accumulateAndGet(now, Math::min);
            } else if (r.getCode() == ResponseCode.SUCCESS) {
                taken.incrementAndGet();
                bad.add(body + " acknowledged (" + when + "; " + r.getRemark() + ")");
            } else {
                otherCode.incrementAndGet();
                bad.add(body + " answered code " + r.getCode() + " " + r.getRemark() + " (" + when + ")");
            }
        }

        long sent() {
            return sent.get();
        }

        long refused() {
            return refused.get();
        }

        long taken() {
            return taken.get();
        }

        long otherCode() {
            return otherCode.get();
        }

        long unanswered() {
            return unanswered.get();
        }

        /** From SIGCONT to the first refusal (14) received, -1 if none. */
        long resumeToFirstRefusalMs() {
            long f = firstRefusalNanos.get();
            return f == Long.MAX_VALUE || resumedAt == 0 ? -1 : TimeUnit.NANOSECONDS.toMillis(f - resumedAt);
        }

        String summary() {
            return sent.get() + " sent, answers " + new TreeMap<>(kinds) + ", first refusal "
                + resumeToFirstRefusalMs() + " ms after SIGCONT";
        }

        /** What the old master must not have done with the probes of this round. */
        List<String> violations(String round) {
            List<String> out = new ArrayList<>();
            synchronized (bad) {
                if (!bad.isEmpty()) {
                    out.add(round + ": " + bad.size() + " writes sent straight to the old master " + addr
                        + " after its SIGSTOP were not refused with code 14 within " + TIMEOUT_MS + " ms: "
                        + bad.subList(0, Math.min(20, bad.size())) + (bad.size() > 20 ? " ..." : ""));
                }
            }
            return out;
        }
    }

    // ------------------------------------------------------------------ the group

    /** Polls the controller's view of {@link #BROKER_NAME}. */
    private final class GroupWatch {
        private final DefaultMQAdminExt admin;
        private final String ctl;
        private final String[] last = {"nothing read yet"};

        GroupWatch(DefaultMQAdminExt admin, String ctl) {
            this.admin = admin;
            this.ctl = ctl;
        }

        /** Waits up to {@link #STEP_TIMEOUT_MS} for a state that satisfies {@code condition}; fails if a process crashed. */
        ReplicasInfo await(String what, Predicate<ReplicasInfo> condition) throws InterruptedException {
            long t0 = System.nanoTime();
            long deadline = t0 + TimeUnit.MILLISECONDS.toNanos(STEP_TIMEOUT_MS);
            // bounded by the deadline
            while (true) {
                processes.assertNoneCrashed("waiting for " + what);
                ReplicasInfo r = ControllerState.replicas(admin, ctl, BROKER_NAME, last);
                if (r != null && condition.test(r)) {
                    System.out.printf("[jf] %s after %d ms: %s%n", what,
                        TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0), last[0]);
                    return r;
                }
                if (System.nanoTime() > deadline) {
                    fail("timed out after " + STEP_TIMEOUT_MS + " ms waiting for " + what
                        + "; the controller's last answer: " + last[0]);
                }
                Thread.sleep(200);
            }
        }
    }

    // ------------------------------------------------------------------ reporting

    private static long median(List<Long> values) {
        List<Long> sorted = values.stream().sorted().toList();
        return sorted.isEmpty() ? 0 : sorted.get((sorted.size() - 1) / 2);
    }

    /** Each lost body's place, and what the consumer was given from that place instead. */
    private static String describeLost(List<String> lost, Map<String, SendLog.Ack> acked, Received received) {
        List<String> out = new ArrayList<>();
        for (String body : lost.subList(0, Math.min(20, lost.size()))) {
            SendLog.Ack a = acked.get(body);
            out.add(body + " (SEND_OK for queue " + a.queue() + " offset " + a.offset() + "; the consumer got "
                + received.deliveredAt(a.queue(), a.offset()) + " from there)");
        }
        return out + (lost.size() > 20 ? " ..." : "");
    }

    /** Each broker's max offset of every queue of {@code topic}: are lost messages missing from the store? */
    private static String maxOffsets(DefaultMQAdminExt admin, Set<String> brokerAddrs, String topic) {
        MQClientAPIImpl api = admin.getDefaultMQAdminExtImpl().getMqClientInstance().getMQClientAPIImpl();
        StringBuilder b = new StringBuilder();
        for (String addr : brokerAddrs) {
            b.append(addr).append(':');
            for (int q = 0; q < QueuePulls.QUEUES; q++) {
                try {
                    b.append(" q").append(q).append('=')
                        .append(api.getMaxOffset(addr, new MessageQueue(topic, BROKER_NAME, q), 3_000));
                } catch (Exception e) {
                    b.append(" q").append(q).append(": ").append(e);
                }
            }
            b.append("; ");
        }
        return b.toString();
    }
}
