package io.ferromq.apachetools;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Deque;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.rocketmq.client.consumer.PullResult;
import org.apache.rocketmq.client.consumer.PullStatus;
import org.apache.rocketmq.client.impl.CommunicationMode;
import org.apache.rocketmq.client.impl.MQClientAPIImpl;
import org.apache.rocketmq.client.impl.consumer.PullResultExt;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.TopicConfig;
import org.apache.rocketmq.common.constant.PermName;
import org.apache.rocketmq.common.filter.ExpressionType;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageDecoder;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.common.sysflag.PullSysFlag;
import org.apache.rocketmq.remoting.protocol.body.BrokerReplicasInfo;
import org.apache.rocketmq.remoting.protocol.body.EpochEntryCache;
import org.apache.rocketmq.remoting.protocol.header.PullMessageRequestHeader;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Apache RocketMQ 5.5.0 brokers in controller mode ({@code enableControllerMode=true}, AutoSwitch
 * HA) under FerroMQ's controller ({@code ferromq controller}) and FerroMQ's name server, every
 * process on 127.0.0.1 and started here; the brokers are child JVMs on this JVM's class path.
 *
 * <p>{@link #apacheBrokersFailOverUnderFerroMQController()}: two Apache brokers of one group, each
 * configured as Apache's quick start ({@code distribution/conf/controller/quick-start/broker-n0.conf}:
 * {@code brokerId=-1}, {@code brokerRole=SLAVE}, {@code allAckInSyncStateSet=true}), get their ids
 * from the controller (GET_NEXT_BROKER_ID / APPLY_BROKER_ID / REGISTER_BROKER), one is elected
 * master (ELECT_MASTER) and the master reports the other into the in-sync set
 * (ALTER_SYNC_STATE_SET), as Apache's own admin API reads it from the controller
 * (CONTROLLER_GET_SYNC_STATE_DATA). 200 sends are SEND_OK (each acknowledged by both, since
 * {@code allAckInSyncStateSet}). The master's JVM is then killed (SIGKILL); the controller notices
 * the missing heartbeats, elects the other broker and tells it (NOTIFY_BROKER_ROLE_CHANGED); 200
 * more sends are SEND_OK on it, and all 400 bodies can be pulled from it. Neither broker's log
 * reports a failed controller request.
 *
 * <p>FerroMQ's controller judges a broker dead when its heartbeats stop for the broker's
 * {@code controllerHeartBeatTimeoutMills} (10 s); Apache's controller also reacts at once to the
 * heartbeat connection closing. The election is therefore waited for up to 60 s.
 *
 * <p>Debugging: {@code -Dctl.showOutput=true} prints every process's output and Apache's logs
 * even when the test passes (a failure always prints them); {@code -Dctl.keepWork=true} keeps the
 * data directories and Apache's logs (under {@code <work>/<name>-home/logs/rocketmqlogs}).
 *
 * <p>Every process is stopped by its own {@link Process} handle; with {@code -Dtarget.namesrv}
 * (the suite against an external Apache install) the class is skipped.
 */
@Timeout(value = 360, unit = TimeUnit.SECONDS)
class ControllerInteropTest {

    static final String CLUSTER = "DefaultCluster";
    static final String BROKER_NAME = "broker-c";
    static final String READY = FerroMQServer.READY_PREFIX;
    static final String APACHE_READY = "boot success";
    static final int QUEUES = 4;
    static final int SENDS = 200;
    static final long FERRO_READY_MS = 30_000;
    static final long APACHE_READY_MS = 120_000;

    /**
     * Lower-case fragments of what Apache's broker logs (WARN/ERROR) when a controller request
     * fails or its answer is unusable: {@code ReplicasManager} and {@code BrokerOuterAPI}'s
     * controller calls (metadata, broker-id allocation, registration, election, SyncStateSet
     * reports, heartbeats).
     */
    static final List<String> CONTROLLER_FAILURES = List.of(
        "replicasmanager", "to controller", "from controller", "controller metadata", "controllers in",
        "apply broker id", "next broker id", "metadata file", "'s metadata", "try elect",
        "syncstateset", "register to broker failed", "scanavailablecontrolleraddresses", "broker id");

    private final List<Proc> procs = new ArrayList<>();
    private final Set<Integer> usedPorts = new HashSet<>();
    private final List<Path> apacheHomes = new ArrayList<>();
    private Path work;
    private Clients clients;

    @BeforeAll
    static void notAgainstAnExternalInstall() {
        Assumptions.assumeFalse(FerroMQServer.external(),
            "-Dtarget.namesrv is set: this class starts its own FerroMQ controller and Apache brokers");
    }

    @BeforeEach
    void setUp() throws IOException {
        work = Files.createTempDirectory("ferromq-ctl-");
    }

    @AfterEach
    void tearDown() {
        if (clients != null) {
            clients.close();
            clients = null;
        }
        List<Proc> rev = new ArrayList<>(procs);
        Collections.reverse(rev);
        for (Proc p : rev) {
            p.close();
        }
        procs.clear();
        if (Boolean.getBoolean("ctl.keepWork")) {
            System.out.println("[ctl] -Dctl.keepWork=true: kept " + work);
        } else {
            FerroMQServer.deleteRecursively(work);
        }
    }

    // ------------------------------------------------------------------ test

    @Test
    void apacheBrokersFailOverUnderFerroMQController() throws Throwable {
        diagnoseOnFailure(() -> {
            String ns = startNamesrv();
            String ctl = startController();

            // both brokers boot in parallel; each waits for the controller before it serves
            int port1 = brokerPort();
            int port2 = brokerPort();
            Proc b1 = launchApacheBroker("abroker1", port1, ns, ctl);
            Proc b2 = launchApacheBroker("abroker2", port2, ns, ctl);
            b1.awaitReady(APACHE_READY_MS);
            b2.awaitReady(APACHE_READY_MS);
            String addr1 = "127.0.0.1:" + port1;
            String addr2 = "127.0.0.1:" + port2;

            clients = new Clients(ns);
            DefaultMQAdminExt admin = clients.admin();

            // (1) one is elected master, and both end up in the in-sync set
            long t0 = System.nanoTime();
            BrokerReplicasInfo.ReplicasInfo[] info = {null};
            String[] last = {"nothing read yet"};
            boolean formed = Clients.await(60_000, () -> {
                BrokerReplicasInfo.ReplicasInfo r = replicas(admin, ctl, last);
                if (r == null) {
                    return false;
                }
                info[0] = r;
                Set<String> inSync = addresses(r.getInSyncReplicas(), true);
                return (addr1.equals(r.getMasterAddress()) || addr2.equals(r.getMasterAddress()))
                    && inSync.equals(Set.of(addr1, addr2));
            });
            assertTrue(formed, "within 60 s the controller did not show a master with both brokers in sync; last: "
                + last[0]);
            String masterAddr = info[0].getMasterAddress();
            long masterId = info[0].getMasterBrokerId();
            String otherAddr = masterAddr.equals(addr1) ? addr2 : addr1;
            Proc master = masterAddr.equals(addr1) ? b1 : b2;
            Proc other = master == b1 ? b2 : b1;
            System.out.printf("[ctl] master %s (id %d, epoch %d), in-sync set %s (epoch %d) after %d ms%n",
                masterAddr, masterId, info[0].getMasterEpoch(), addresses(info[0].getInSyncReplicas(), true),
                info[0].getSyncStateSetEpoch(), TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0));

            // (2) a topic on the master; the slave copies the master's topic table every 10 s
            // (ReplicasManager.handleSlaveSynchronize): wait for it, or it could not serve the
            // topic once it is master
            String topic = "CtlFailover_" + Clients.uid();
            admin.createAndUpdateTopicConfig(masterAddr, topicConfig(topic));
            Clients.awaitOrFail("the slave " + otherAddr + " to copy topic " + topic + " from the master", 60_000, () -> {
                try {
                    return admin.examineTopicConfig(otherAddr, topic) != null;
                } catch (Exception e) {
                    return false;
                }
            });

            // routes every second, not every 30 s, so that the sends find the new master soon
            DefaultMQProducer producer = new DefaultMQProducer("CtlPG_" + Clients.uid());
            clients.configure(producer, producer.getProducerGroup());
            producer.setPollNameServerInterval(1_000);
            producer.start();
            clients.onClose(producer::shutdown);

            Set<String> sent = new LinkedHashSet<>();
            for (int i = 0; i < SENDS; i++) {
                String body = topic + "-" + i;
                SendResult r = Clients.sendWhenRouted(producer,
                    new Message(topic, "TagA", body.getBytes(StandardCharsets.UTF_8)), null);
                assertEquals(SendStatus.SEND_OK, r.getSendStatus(), "status of message " + i + ": " + r);
                sent.add(body);
            }
            BrokerReplicasInfo.ReplicasInfo before = replicas(admin, ctl, last);
            assertTrue(before != null && addresses(before.getInSyncReplicas(), true).equals(Set.of(addr1, addr2)),
                "after the sends the in-sync set is no longer both brokers: " + last[0]);
            System.out.printf("[ctl] %d sends SEND_OK on master %s with both brokers in sync%n", SENDS, masterAddr);

            // (3) SIGKILL the master; the controller must elect the other one
            long killedAt = System.nanoTime();
            master.kill();
            BrokerReplicasInfo.ReplicasInfo[] after = {null};
            boolean elected = Clients.await(60_000, () -> {
                BrokerReplicasInfo.ReplicasInfo r = replicas(admin, ctl, last);
                after[0] = r;
                return r != null && otherAddr.equals(r.getMasterAddress()) && r.getMasterBrokerId() != masterId
                    && r.getMasterEpoch() > info[0].getMasterEpoch();
            });
            assertTrue(elected, "within 60 s of killing master " + masterAddr + " the controller did not elect "
                + otherAddr + "; last: " + last[0]);
            long electedMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - killedAt);
            System.out.printf("[ctl] killed %s; %s (id %d) elected master, epoch %d, in-sync %s, %d ms after the kill%n",
                masterAddr, otherAddr, after[0].getMasterBrokerId(), after[0].getMasterEpoch(),
                addresses(after[0].getInSyncReplicas(), true), electedMs);

            // (4) sends succeed on the new master (the producer re-reads the route every second)
            Map<String, Integer> notOk = new TreeMap<>();
            long sendT0 = System.nanoTime();
            long deadline = sendT0 + TimeUnit.SECONDS.toNanos(60);
            for (int i = SENDS; i < 2 * SENDS; i++) {
                String body = topic + "-" + i;
                // bounded by the deadline
                while (true) {
                    String outcome;
                    try {
                        SendResult r = producer.send(new Message(topic, "TagA", body.getBytes(StandardCharsets.UTF_8)));
                        if (r.getSendStatus() == SendStatus.SEND_OK) {
                            break;
                        }
                        outcome = r.getSendStatus().name();
                    } catch (Exception e) {
                        outcome = e.getClass().getSimpleName();
                    }
                    notOk.merge(outcome, 1, Integer::sum);
                    if (System.nanoTime() > deadline) {
                        fail("message " + i + " got no SEND_OK within 60 s after the election; not OK so far: " + notOk);
                    }
                    Thread.sleep(200);
                }
                sent.add(body);
            }
            System.out.printf("[ctl] %d more sends SEND_OK in %d ms after the election; answers other than"
                + " SEND_OK before that: %s%n", SENDS, TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - sendT0), notOk);

            // (5) every acknowledged body can be pulled from the new master
            MQClientAPIImpl api = admin.getDefaultMQAdminExtImpl().getMqClientInstance().getMQClientAPIImpl();
            awaitAllPulled(api, otherAddr, BROKER_NAME, topic, sent, 60_000);

            EpochEntryCache epochs = admin.getBrokerEpochCache(otherAddr);
            System.out.println("[ctl] the new master's epochs: " + epochs.getEpochList());

            // (6) no controller request failed on either broker
            for (Path home : apacheHomes) {
                Path log = home.resolve("logs").resolve("rocketmqlogs").resolve("broker.log");
                if (!Files.isRegularFile(log)) {
                    continue;
                }
                List<String> bad = new ArrayList<>();
                for (String line : Files.readAllLines(log, StandardCharsets.UTF_8)) {
                    // "<date> <time> <LEVEL> <thread> - <message>": match the message only (thread
                    // names such as BrokerControllerScheduledThread1 say nothing about the controller)
                    int dash = line.indexOf(" - ");
                    if (dash < 0 || !(line.contains(" ERROR ") || line.contains(" WARN "))) {
                        continue;
                    }
                    String msg = line.substring(dash + 3).toLowerCase();
                    if (CONTROLLER_FAILURES.stream().anyMatch(msg::contains)) {
                        bad.add(line);
                    }
                }
                assertTrue(bad.isEmpty(), log + " reports failed controller requests:\n" + String.join("\n", bad));
            }
            assertTrue(other.isAlive(), "the new master exited");
        });
    }

    /** The controller's view of {@link #BROKER_NAME} through Apache's admin API (code 1006), or null. */
    private static BrokerReplicasInfo.ReplicasInfo replicas(DefaultMQAdminExt admin, String ctl, String[] last) {
        try {
            BrokerReplicasInfo all = admin.getInSyncStateData(ctl, List.of(BROKER_NAME));
            BrokerReplicasInfo.ReplicasInfo r = all.getReplicasInfoTable().get(BROKER_NAME);
            last[0] = r == null ? "no entry for " + BROKER_NAME + " in " + all.toJson()
                : "master " + r.getMasterBrokerId() + "@" + r.getMasterAddress() + " epoch " + r.getMasterEpoch()
                    + ", in sync " + describe(r.getInSyncReplicas()) + " (set epoch " + r.getSyncStateSetEpoch()
                    + "), not in sync " + describe(r.getNotInSyncReplicas());
            return r;
        } catch (Exception e) {
            last[0] = e.toString();
            return null;
        }
    }

    private static Set<String> addresses(List<BrokerReplicasInfo.ReplicaIdentity> ids, boolean aliveOnly) {
        Set<String> out = new HashSet<>();
        if (ids != null) {
            for (BrokerReplicasInfo.ReplicaIdentity id : ids) {
                if (!aliveOnly || Boolean.TRUE.equals(id.getAlive())) {
                    out.add(id.getBrokerAddress());
                }
            }
        }
        return out;
    }

    private static String describe(List<BrokerReplicasInfo.ReplicaIdentity> ids) {
        List<String> out = new ArrayList<>();
        if (ids != null) {
            for (BrokerReplicasInfo.ReplicaIdentity id : ids) {
                out.add(id.getBrokerId() + "@" + id.getBrokerAddress() + (Boolean.TRUE.equals(id.getAlive()) ? "" : "(dead)"));
            }
        }
        return out.toString();
    }

    // ------------------------------------------------------------------ pulling (as HaInteropTest)

    static TopicConfig topicConfig(String topic) {
        return new TopicConfig(topic, QUEUES, QUEUES, PermName.PERM_READ | PermName.PERM_WRITE);
    }

    /** Pulls every queue of {@code topic} from {@code addr} until the bodies are exactly {@code expected}. */
    static void awaitAllPulled(MQClientAPIImpl api, String addr, String brokerName, String topic,
                               Set<String> expected, long timeoutMs) throws InterruptedException {
        String group = "CtlCG_" + Clients.uid();
        String[] last = {"nothing pulled yet"};
        long t0 = System.nanoTime();
        boolean all = Clients.await(timeoutMs, () -> {
            try {
                Set<String> got = new HashSet<>();
                StringBuilder how = new StringBuilder();
                for (int q = 0; q < QUEUES; q++) {
                    how.append(" q").append(q).append(": ").append(pullQueue(api, addr, brokerName, topic, q, group, got));
                }
                Set<String> missing = new LinkedHashSet<>(expected);
                missing.removeAll(got);
                Set<String> extra = new HashSet<>(got);
                extra.removeAll(expected);
                last[0] = got.size() + " distinct bodies pulled, " + missing.size() + " missing (e.g. "
                    + missing.stream().limit(3).toList() + "), " + extra.size() + " unexpected;" + how;
                return missing.isEmpty() && extra.isEmpty();
            } catch (Exception e) {
                last[0] = e.toString();
                return false;
            }
        });
        assertTrue(all, "pulling " + topic + " from " + addr + " did not return the "
            + expected.size() + " bodies sent within " + timeoutMs + " ms; last try: " + last[0]);
        System.out.printf("[ctl] pulled all %d bodies from %s (%d ms of retries)%n", expected.size(), addr,
            TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0));
    }

    /** Pulls one queue from offset 0 up to its max offset; adds the bodies to {@code got}; describes the pulls. */
    static String pullQueue(MQClientAPIImpl api, String addr, String brokerName, String topic, int queueId,
                            String group, Set<String> got) throws Exception {
        long max = api.getMaxOffset(addr, new MessageQueue(topic, brokerName, queueId), 5_000);
        long offset = 0;
        String status = "max " + max;
        // bounded: at most 64 pulls of up to 32 messages per queue
        for (int i = 0; i < 64 && offset < max; i++) {
            PullMessageRequestHeader h = new PullMessageRequestHeader();
            h.setConsumerGroup(group);
            h.setTopic(topic);
            h.setQueueId(queueId);
            h.setQueueOffset(offset);
            h.setMaxMsgNums(32);
            // the subscription flag: the broker takes the subscription from this request
            h.setSysFlag(PullSysFlag.buildSysFlag(false, false, true, false));
            h.setCommitOffset(0L);
            h.setSuspendTimeoutMillis(0L);
            h.setSubscription("*");
            h.setSubVersion(0L);
            h.setExpressionType(ExpressionType.TAG);
            PullResult r = api.pullMessage(addr, h, 10_000, CommunicationMode.SYNC, null);
            if (r.getPullStatus() != PullStatus.FOUND) {
                return status + ", " + r.getPullStatus() + " at " + offset;
            }
            byte[] bin = ((PullResultExt) r).getMessageBinary();
            List<MessageExt> msgs = MessageDecoder.decodes(ByteBuffer.wrap(bin));
            for (MessageExt m : msgs) {
                got.add(new String(m.getBody(), StandardCharsets.UTF_8));
            }
            if (r.getNextBeginOffset() <= offset) {
                return status + ", next offset " + r.getNextBeginOffset() + " after " + offset;
            }
            offset = r.getNextBeginOffset();
        }
        return status + ", pulled to " + offset;
    }

    // ------------------------------------------------------------------ processes

    private String startNamesrv() throws Exception {
        int port = freePort();
        Path bin = FerroMQServer.binaryPath();
        Proc p = start("namesrv", List.of(bin.toString(), "namesrv", "--listen", "127.0.0.1:" + port),
            Map.of(), work, READY);
        p.awaitReady(FERRO_READY_MS);
        return "127.0.0.1:" + port;
    }

    private String startController() throws Exception {
        int port = freePort();
        Path store = Files.createDirectories(work.resolve("controller"));
        String conf = String.join("\n",
            "controllerDLegerPeers=n0-127.0.0.1:" + port,
            "controllerDLegerSelfId=n0",
            "controllerStorePath=" + store,
            "scanInactiveMasterInterval=500",
            "");
        Path confFile = work.resolve("controller.conf");
        Files.writeString(confFile, conf);
        Path bin = FerroMQServer.binaryPath();
        Proc p = start("controller", List.of(bin.toString(), "controller", "-c", confFile.toString()),
            Map.of(), work, READY);
        p.log("[harness] controller.conf: " + conf.trim().replace("\n", "; "));
        p.awaitReady(FERRO_READY_MS);
        return "127.0.0.1:" + port;
    }

    /** Starts an Apache broker in controller mode, configured as Apache's quick start; does not wait. */
    private Proc launchApacheBroker(String name, int listenPort, String ns, String ctl) throws Exception {
        Path store = work.resolve(name);
        String conf = String.join("\n",
            "brokerClusterName=" + CLUSTER,
            "brokerName=" + BROKER_NAME,
            "brokerId=-1",
            "brokerRole=SLAVE",
            "deleteWhen=04",
            "fileReservedTime=48",
            "enableControllerMode=true",
            "controllerAddr=" + ctl,
            "namesrvAddr=" + ns,
            "allAckInSyncStateSet=true",
            "listenPort=" + listenPort,
            "haListenPort=" + freePort(),
            "brokerIP1=127.0.0.1",
            "brokerIP2=127.0.0.1",
            "storePathRootDir=" + store,
            "storePathCommitLog=" + store.resolve("commitlog"),
            "storePathEpochFile=" + store.resolve("epochFileCheckpoint"),
            "");
        Path home = Files.createDirectories(work.resolve(name + "-home"));
        apacheHomes.add(home);
        Path confFile = work.resolve(name + ".conf");
        Files.writeString(confFile, conf);
        List<String> cmd = List.of(
            Paths.get(System.getProperty("java.home"), "bin", "java").toString(),
            "-Xmx512m",
            "-Duser.home=" + home,
            "-cp", System.getProperty("java.class.path"),
            "org.apache.rocketmq.broker.BrokerStartup",
            "-c", confFile.toString());
        Proc p = start(name, cmd, Map.of("ROCKETMQ_HOME", home.toString()), home, APACHE_READY);
        p.log("[harness] broker.conf: " + conf.trim().replace("\n", "; "));
        return p;
    }

    private Proc start(String name, List<String> cmd, Map<String, String> env, Path dir, String ready)
        throws IOException {
        Proc p = new Proc(name, ready);
        procs.add(p);
        p.launch(cmd, env, dir);
        return p;
    }

    /** Runs the test body; on failure prints every process's output and Apache's logs, then rethrows. */
    private void diagnoseOnFailure(Body body) throws Throwable {
        try {
            body.run();
            if (Boolean.getBoolean("ctl.showOutput")) {
                System.out.println(diagnostics("-Dctl.showOutput=true"));
            }
        } catch (Throwable t) {
            System.out.println(diagnostics("ControllerInteropTest failed: " + t));
            throw t;
        }
    }

    private String diagnostics(String title) {
        StringBuilder b = new StringBuilder("\n===== " + title + " =====\n");
        for (Proc p : procs) {
            b.append("----- ").append(p.name).append(" (").append(p.state()).append("), last lines -----\n")
                .append(p.tail()).append('\n');
        }
        for (Path home : apacheHomes) {
            Path logs = home.resolve("logs").resolve("rocketmqlogs");
            for (String f : List.of("broker.log", "store.log", "broker_default.log")) {
                Path log = logs.resolve(f);
                if (Files.isRegularFile(log)) {
                    b.append("----- ").append(log).append(", last 80 lines -----\n")
                        .append(tailOf(log, 80)).append('\n');
                }
            }
        }
        b.append("===== end of ControllerInteropTest diagnostics =====\n");
        return b.toString();
    }

    private static String tailOf(Path file, int n) {
        try {
            List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - n), lines.size()));
        } catch (IOException e) {
            return "(cannot read: " + e + ")";
        }
    }

    @FunctionalInterface
    interface Body {
        void run() throws Exception;
    }

    // ------------------------------------------------------------------ ports

    /** A free 127.0.0.1 port, distinct from every port this test chose before. */
    private int freePort() throws IOException {
        InetAddress lo = InetAddress.getByName("127.0.0.1");
        // bounded: at most 100 candidates
        for (int i = 0; i < 100; i++) {
            int p;
            try (ServerSocket s = new ServerSocket(0, 1, lo)) {
                p = s.getLocalPort();
            }
            if (usedPorts.add(p)) {
                return p;
            }
        }
        throw new IOException("no free port found in 100 tries");
    }

    /** A free broker port P with P - 2 (VIP channel) and P + 1 (default HA port) free as well. */
    private int brokerPort() throws IOException {
        InetAddress lo = InetAddress.getByName("127.0.0.1");
        // bounded: at most 100 candidates
        for (int i = 0; i < 100; i++) {
            try (ServerSocket s = new ServerSocket(0, 1, lo)) {
                int p = s.getLocalPort();
                if (p - 2 < 1024 || p + 1 > 65535 || usedPorts.contains(p) || usedPorts.contains(p - 2)
                    || usedPorts.contains(p + 1) || !bindable(lo, p - 2) || !bindable(lo, p + 1)) {
                    continue;
                }
                usedPorts.add(p);
                usedPorts.add(p - 2);
                usedPorts.add(p + 1);
                return p;
            }
        }
        throw new IOException("found no broker port P with P-2 and P+1 free in 100 tries");
    }

    private static boolean bindable(InetAddress lo, int port) {
        try (ServerSocket s = new ServerSocket(port, 1, lo)) {
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    /** One child process; keeps the last lines it printed; stopped only through its own handle. */
    static final class Proc implements AutoCloseable {
        private static final int KEPT = 400;

        final String name;
        private final String readyMarker;
        private final Deque<String> lines = new ArrayDeque<>();
        private final CountDownLatch ready = new CountDownLatch(1);
        private final long startNanos = System.nanoTime();
        private Process process;
        private final List<Thread> pumps = new ArrayList<>();

        Proc(String name, String readyMarker) {
            this.name = name;
            this.readyMarker = readyMarker;
        }

        void launch(List<String> cmd, Map<String, String> env, Path dir) throws IOException {
            log("[harness] starting: " + String.join(" ", cmd).replaceAll("-cp \\S+", "-cp <test class path>"));
            ProcessBuilder pb = new ProcessBuilder(cmd);
            pb.directory(dir.toFile());
            pb.environment().putAll(env);
            pb.redirectInput(ProcessBuilder.Redirect.PIPE);
            process = pb.start();
            process.getOutputStream().close();
            pumps.add(pump(process.getInputStream(), "out"));
            pumps.add(pump(process.getErrorStream(), "err"));
        }

        private Thread pump(InputStream in, String tag) {
            Thread t = new Thread(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
                    String line;
                    while ((line = r.readLine()) != null) {
                        log("[" + tag + " +" + elapsedMs() + "ms] " + line);
                        if (tag.equals("out") && line.contains(readyMarker)) {
                            ready.countDown();
                        }
                    }
                } catch (IOException ignored) {
                    // the process went away
                }
            }, "ctl-" + name + "-" + tag);
            t.setDaemon(true);
            t.start();
            return t;
        }

        void awaitReady(long timeoutMs) throws InterruptedException {
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
            // bounded: at most timeoutMs / 100 iterations
            while (!ready.await(100, TimeUnit.MILLISECONDS)) {
                if (!process.isAlive()) {
                    for (Thread t : pumps) {
                        t.join(1000);
                    }
                    fail(name + " exited with code " + process.exitValue() + " before printing '" + readyMarker
                        + "'\n" + tail());
                }
                if (System.nanoTime() > deadline) {
                    fail(name + " did not print '" + readyMarker + "' within " + timeoutMs + " ms\n" + tail());
                }
            }
            log("[harness] ready after " + elapsedMs() + " ms");
            System.out.printf("[ctl] %s ready after %d ms%n", name, elapsedMs());
        }

        /** SIGKILL through our own handle; waits up to 10 s for the exit. */
        void kill() throws InterruptedException {
            log("[harness] SIGKILL pid " + process.pid());
            process.destroyForcibly();
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                fail(name + " (pid " + process.pid() + ") still running 10 s after SIGKILL");
            }
            System.out.printf("[ctl] %s (pid %d) killed%n", name, process.pid());
        }

        boolean isAlive() {
            return process != null && process.isAlive();
        }

        private long elapsedMs() {
            return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - startNanos);
        }

        void log(String line) {
            synchronized (lines) {
                lines.addLast(line);
                if (lines.size() > KEPT) {
                    lines.removeFirst();
                }
            }
        }

        String tail() {
            synchronized (lines) {
                return String.join("\n", lines);
            }
        }

        String state() {
            if (process == null) {
                return "not started";
            }
            return process.isAlive() ? "running, pid " + process.pid() : "exited with code " + process.exitValue();
        }

        /** SIGTERM through our own handle, up to 15 s, then SIGKILL. */
        @Override
        public void close() {
            if (process == null) {
                return;
            }
            if (process.isAlive()) {
                // ProcessHandle.destroy() keeps our ends of the pipes open, so the shutdown output is kept
                if (!process.toHandle().destroy()) {
                    process.destroy();
                }
                try {
                    if (!process.waitFor(15, TimeUnit.SECONDS)) {
                        log("[harness] no exit 15 s after SIGTERM; killing");
                        process.destroyForcibly();
                        process.waitFor(10, TimeUnit.SECONDS);
                    }
                } catch (InterruptedException e) {
                    process.destroyForcibly();
                    Thread.currentThread().interrupt();
                }
            }
            try {
                for (Thread t : pumps) {
                    t.join(1000);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
