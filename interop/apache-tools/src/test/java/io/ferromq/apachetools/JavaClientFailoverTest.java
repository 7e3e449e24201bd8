package io.ferromq.apachetools;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Predicate;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.exception.MQBrokerException;
import org.apache.rocketmq.client.exception.MQClientException;
import org.apache.rocketmq.client.impl.MQClientAPIImpl;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.remoting.protocol.body.BrokerReplicasInfo.ReplicasInfo;
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
 * (clustering, from the first offset) records every body it receives. {@value #KILLS} times the
 * current master is SIGKILLed, the controller elects another, the time from the kill to the
 * first SEND_OK of a send started after it is measured, and the killed broker is started again
 * on the same port and data directory until all three are in sync. Then the producer stops and
 * every acknowledged body must reach the consumer; duplicates are counted, not failed (delivery
 * is at least once). The figures are printed in one line starting {@code JAVA FAILOVER FIGURES:},
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
    static final int KILLS = 3;
    /** Every wait of the kill loop: an election, the first SEND_OK, the group back in sync. */
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
    void javaClientKeepsSendingAndConsumingThroughMasterKills() throws Throwable {
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

            List<Long> electionsMs = new ArrayList<>();
            List<Long> failoversMs = new ArrayList<>();
            for (int k = 1; k <= KILLS; k++) {
                String kill = "kill " + k;
                ReplicasInfo before = group.await(kill + ": all three brokers in sync", allInSync);
                // a moment of load on the healthy group, and proof that it is acknowledging
                Thread.sleep(2_000);
                awaitOkAfter(sends, System.nanoTime(), kill + ": a SEND_OK with all three in sync");

                String victimAddr = before.getMasterAddress();
                ChildProcesses.Proc victim = brokers.get(victimAddr);
                long ackedBefore = sends.acked();
                long killedAt = System.nanoTime();
                victim.kill();

                ReplicasInfo after = group.await(kill + ": a master other than " + victimAddr,
                    r -> r.getMasterAddress() != null && !r.getMasterAddress().isEmpty()
                        && !victimAddr.equals(r.getMasterAddress()) && r.getMasterEpoch() > before.getMasterEpoch());
                long electedMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - killedAt);
                electionsMs.add(electedMs);

                long firstOk = awaitOkAfter(sends, killedAt, kill + ": the first SEND_OK after killing " + victimAddr);
                long failoverMs = TimeUnit.NANOSECONDS.toMillis(firstOk - killedAt);
                failoversMs.add(failoverMs);
                System.out.printf("[jf] %s at +%d ms: SIGKILLed master %s (%s, epoch %d) with %d acknowledged; %s"
                        + " master (epoch %d) %d ms later; first SEND_OK %d ms after the kill%n",
                    kill, TimeUnit.NANOSECONDS.toMillis(killedAt - testStart), victim.name, victimAddr,
                    before.getMasterEpoch(), ackedBefore, after.getMasterAddress(), after.getMasterEpoch(), electedMs,
                    failoverMs);

                victim.restart(ChildProcesses.FERRO_READY_MS, RESTART_ATTEMPTS);
            }
            group.await("after the last kill: all three brokers in sync", allInSync);
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

            System.out.println("[jf] first answer of each kind other than SEND_OK: " + sends.samples());
            System.out.printf("[jf] consumer: %d distinct bodies, %d deliveries; not acknowledged to the producer"
                    + " (a send in flight at a kill may be stored yet fail at the client): %s; %s %d ms after the"
                    + " producer stopped%n", counts.size(), received.deliveries(), receivedNotAcked,
                drained ? "caught up" : "still missing messages", drainMs);
            System.out.printf("[jf] slowest delivery: %s, received %d ms after its SEND_OK%n", slowest, maxLagMs);
            System.out.printf("JAVA FAILOVER FIGURES: kills=%d sent=%d acked=%d not-acked=%d %s lost=%d"
                    + " duplicates=%d (extra deliveries %d) delivered-then-overwritten=%d elections(kill->new master)=%s ms"
                    + " failover(kill->first SEND_OK)=%s ms p50=%d max=%d max-delivery-lag=%d ms runtime=%d s%n",
                KILLS, sends.sent(), acked.size(), sends.sent() - acked.size(), sends.notAckedByKind(), lost.size(),
                duplicateBodies, extraDeliveries, overwritten, electionsMs, failoversMs, median(failoversMs),
                failoversMs.stream().mapToLong(Long::longValue).max().orElse(0), maxLagMs,
                TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - testStart));

            if (!lost.isEmpty()) {
                fail(lost.size() + " of " + acked.size() + " acknowledged messages never reached the consumer: "
                    + describeLost(lost, acked, received) + "; queue max offsets now: "
                    + maxOffsets(admin, brokerAddrs, topic));
            }
        });
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
            notAcked(body, kind(e), e.toString().lines().findFirst().orElse(""));
            return false;
        }

        private void notAcked(String body, String kind, String text) {
            notAcked.merge(kind, 1, Integer::sum);
            firstOfKind.putIfAbsent(kind, body + ": " + text);
            lastNotAcked = kind + " (" + body + ")";
        }

        /** The exception's class, with the broker's code or the client's cause where there is one. */
        private static String kind(Exception e) {
            if (e instanceof MQBrokerException b) {
                return "MQBrokerException code " + b.getResponseCode();
            }
            if (e instanceof MQClientException c && c.getCause() != null) {
                return "MQClientException(" + c.getCause().getClass().getSimpleName() + ")";
            }
            return e.getClass().getSimpleName();
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
