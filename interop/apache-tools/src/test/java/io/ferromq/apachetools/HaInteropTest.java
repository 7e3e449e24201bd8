package io.ferromq.apachetools;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
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
import org.apache.rocketmq.remoting.protocol.header.PullMessageRequestHeader;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Apache RocketMQ's classic master/slave replication ("HA", {@code DefaultHAService}) between
 * FerroMQ and Apache's own broker (rocketmq-broker 5.5.0, run as a child JVM with this JVM's
 * class path), in both directions, every process on 127.0.0.1 and started here:
 *
 * <ul>
 *   <li>{@link #apacheSlaveFollowsFerroMQMaster()}: a FerroMQ {@code SYNC_MASTER} (explicit
 *       {@code haListenPort}) and an Apache {@code SLAVE} that learns the HA address from the
 *       name server's answer to its registration. Every send ends in SEND_OK (after retries
 *       while no slave is connected yet); the Apache slave's commit log then starts with FerroMQ's
 *       byte for byte, and pulling from the slave by address returns every body sent.</li>
 *   <li>{@link #ferroMQSlaveFollowsApacheMaster()}: an Apache {@code ASYNC_MASTER} with 300
 *       messages, then a FerroMQ {@code SLAVE} that learns the HA address from the name server
 *       (what Apache registers as haServerAddr), then 200 more messages. The slave's commit log
 *       equals the master's up to {@code commitLogMaxOffset}, and pulls from it return all 500.</li>
 * </ul>
 *
 * <p>The Apache slave runs with {@code slaveReadEnable=true}: without it Apache's slave refuses
 * every pull ({@code PullMessageProcessor.rejectRequest}). Pulls set the subscription flag in
 * sysFlag, as {@code DefaultMQPullConsumer} does, since no consumer of the group has sent a
 * heartbeat to the slave. The name server is FerroMQ's in both tests. The Apache slave has no
 * {@code haMasterAddress}: Apache 5.5.0 loses it (it is applied before the HA client exists) and
 * then also ignores the name server's haServerAddr. Apache's slave copies its master's topic table
 * first about 60 s after start, so the pulls from it are retried for up to 90 s.
 *
 * <p>Debugging: {@code -Dha.showOutput=true} prints every process's output and Apache's logs
 * even when the test passes (a failure always prints them); {@code -Dha.keepWork=true} keeps the
 * data directories and Apache's logs (under {@code <work>/<name>-home/logs/rocketmqlogs}).
 *
 * <p>Every process is stopped by its own {@link Process} handle; with {@code -Dtarget.namesrv}
 * (the suite against an external Apache install) the class is skipped.
 */
@Timeout(value = 420, unit = TimeUnit.SECONDS)
class HaInteropTest {

    static final String CLUSTER = "DefaultCluster";
    static final String READY = FerroMQServer.READY_PREFIX;
    static final String APACHE_READY = "boot success";
    static final String FIRST_SEGMENT = "00000000000000000000";
    static final int QUEUES = 4;
    static final long FERRO_READY_MS = 30_000;
    static final long APACHE_READY_MS = 120_000;

    private final List<Proc> procs = new ArrayList<>();
    private final Set<Integer> usedPorts = new HashSet<>();
    private final List<Path> apacheHomes = new ArrayList<>();
    private Path work;
    private Clients clients;

    @BeforeAll
    static void notAgainstAnExternalInstall() {
        Assumptions.assumeFalse(FerroMQServer.external(),
            "-Dtarget.namesrv is set: this class starts its own FerroMQ and Apache brokers");
    }

    @BeforeEach
    void setUp() throws IOException {
        work = Files.createTempDirectory("ferromq-ha-");
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
        if (Boolean.getBoolean("ha.keepWork")) {
            System.out.println("[ha] -Dha.keepWork=true: kept " + work);
        } else {
            FerroMQServer.deleteRecursively(work);
        }
    }

    // ------------------------------------------------------------------ tests

    @Test
    void apacheSlaveFollowsFerroMQMaster() throws Throwable {
        diagnoseOnFailure(() -> {
            String brokerName = "broker-f";
            String ns = startNamesrv();

            int masterPort = brokerPort();
            int haPort = freePort();
            Path fmaster = work.resolve("fmaster");
            startFerroBroker("fmaster", fmaster, masterPort, String.join("\n",
                "brokerClusterName=" + CLUSTER,
                "brokerName=" + brokerName,
                "namesrvAddr=" + ns,
                "haListenPort=" + haPort,
                "brokerRole=SYNC_MASTER",
                ""));
            String masterAddr = "127.0.0.1:" + masterPort;

            clients = new Clients(ns);
            DefaultMQAdminExt admin = clients.admin();
            String topic = "HaF2A_" + Clients.uid();
            // Before the slave starts, so that its first copy of the master's topic table has it:
            // Apache 5.5.0's slave copies it (SlaveSynchronize.syncAll) first about 60 s after it
            // was created, then every 60 s; until then it refuses pulls of the topic.
            admin.createAndUpdateTopicConfig(masterAddr, topicConfig(topic));

            int slavePort = brokerPort();
            Path aslave = work.resolve("aslave");
            startApacheBroker("aslave", String.join("\n",
                "brokerClusterName=" + CLUSTER,
                "brokerName=" + brokerName,
                "brokerId=1",
                "brokerRole=SLAVE",
                "namesrvAddr=" + ns,
                "listenPort=" + slavePort,
                "brokerIP1=127.0.0.1",
                "brokerIP2=127.0.0.1",
                "storePathRootDir=" + aslave,
                // no haMasterAddress: Apache 5.5.0 applies it before its HA client exists (the
                // client is made in DefaultMessageStore.start(), after BrokerController.initialize()),
                // so it is lost, and with it set the slave also ignores the name server's
                // haServerAddr: it would never connect. Without it the slave follows what the
                // name server answers to its registration (FerroMQ's brokerIP2:haListenPort).
                "slaveReadEnable=true",
                ""));
            String slaveAddr = "127.0.0.1:" + slavePort;

            DefaultMQProducer producer = clients.producer("HaPG_" + Clients.uid());
            Set<String> sent = new LinkedHashSet<>();
            Map<String, Integer> notOk = new TreeMap<>();
            long t0 = System.nanoTime();
            long deadline = t0 + TimeUnit.SECONDS.toNanos(90);
            for (int i = 0; i < 300; i++) {
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
                        fail("message " + i + " got no SEND_OK within 90 s of the first send; not OK so far: " + notOk);
                    }
                    Thread.sleep(100);
                }
                sent.add(body);
            }
            System.out.printf("[ha] 300 sends to the FerroMQ SYNC_MASTER acknowledged SEND_OK in %d ms;"
                    + " answers other than SEND_OK before that: %s%n",
                TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0), notOk);

            // (a) the slave's commit log starts with the master's, byte for byte
            Path masterLog = fmaster.resolve("commitlog").resolve(FIRST_SEGMENT);
            Path slaveLog = aslave.resolve("commitlog").resolve(FIRST_SEGMENT);
            String[] last = {"nothing compared yet"};
            boolean same = Clients.await(30_000, () -> {
                try {
                    long len = Files.size(masterLog);
                    if (len == 0) {
                        last[0] = "the master's commit log is empty";
                        return false;
                    }
                    if (!Files.exists(slaveLog) || Files.size(slaveLog) < len) {
                        last[0] = "the slave's commit log is missing or shorter than " + len;
                        return false;
                    }
                    long mismatch = firstMismatch(masterLog, slaveLog, len);
                    last[0] = "master length " + len + ", first differing byte at " + mismatch;
                    return mismatch < 0;
                } catch (IOException e) {
                    last[0] = e.toString();
                    return false;
                }
            });
            assertTrue(same, "the Apache slave's commit log does not start with the FerroMQ master's: " + last[0]);
            System.out.printf("[ha] the Apache slave's commit log holds the master's %d bytes%n", Files.size(masterLog));

            // (b) every body can be pulled from the slave
            MQClientAPIImpl api = admin.getDefaultMQAdminExtImpl().getMqClientInstance().getMQClientAPIImpl();
            awaitAllPulled(api, slaveAddr, brokerName, topic, sent, 90_000);

            // (c) the slave's metadata copy ran (the topic arrived with it) and found every
            // request it makes of a master answered: no unsupported code, no missing field.
            Path logs = work.resolve("aslave-home").resolve("logs").resolve("rocketmqlogs");
            for (String f : List.of("broker.log", "broker_default.log")) {
                Path log = logs.resolve(f);
                if (!Files.isRegularFile(log)) {
                    continue;
                }
                String text = Files.readString(log, StandardCharsets.UTF_8);
                for (String bad : List.of("not supported", "is null", "SyncConsumerOffset Exception",
                        "syncTimerCheckPoint Exception", "SyncTimerMetrics Exception", "syncMessageRequestMode Exception")) {
                    assertFalse(text.contains(bad), log + " reports '" + bad + "':\n" + tailOf(log, 40));
                }
            }
        });
    }

    @Test
    void ferroMQSlaveFollowsApacheMaster() throws Throwable {
        diagnoseOnFailure(() -> {
            String brokerName = "broker-a2";
            String ns = startNamesrv();

            int masterPort = brokerPort();
            int haPort = freePort();
            Path amaster = work.resolve("amaster");
            startApacheBroker("amaster", String.join("\n",
                "brokerClusterName=" + CLUSTER,
                "brokerName=" + brokerName,
                "brokerId=0",
                "brokerRole=ASYNC_MASTER",
                "namesrvAddr=" + ns,
                "listenPort=" + masterPort,
                "haListenPort=" + haPort,
                "brokerIP1=127.0.0.1",
                "brokerIP2=127.0.0.1",
                "storePathRootDir=" + amaster,
                "autoCreateTopicEnable=true",
                ""));
            String masterAddr = "127.0.0.1:" + masterPort;

            clients = new Clients(ns);
            DefaultMQAdminExt admin = clients.admin();
            String topic = "HaA2F_" + Clients.uid();
            admin.createAndUpdateTopicConfig(masterAddr, topicConfig(topic));

            DefaultMQProducer producer = clients.producer("HaPG_" + Clients.uid());
            Set<String> sent = new LinkedHashSet<>();
            sendAll(producer, topic, 0, 300, sent);

            int slavePort = brokerPort();
            Path fslave = work.resolve("fslave");
            startFerroBroker("fslave", fslave, slavePort, String.join("\n",
                "brokerClusterName=" + CLUSTER,
                "brokerName=" + brokerName,
                "brokerId=1",
                "brokerRole=SLAVE",
                "namesrvAddr=" + ns,
                ""));
            String slaveAddr = "127.0.0.1:" + slavePort;

            sendAll(producer, topic, 300, 500, sent);

            // the slave's commit log equals the master's up to commitLogMaxOffset
            Path masterLog = amaster.resolve("commitlog").resolve(FIRST_SEGMENT);
            Path slaveLog = fslave.resolve("commitlog").resolve(FIRST_SEGMENT);
            String[] last = {"nothing compared yet"};
            boolean same = Clients.await(60_000, () -> {
                try {
                    long max = Long.parseLong(admin.fetchBrokerRuntimeStats(masterAddr).getTable().get("commitLogMaxOffset"));
                    long len = Files.exists(slaveLog) ? Files.size(slaveLog) : -1;
                    if (len != max) {
                        last[0] = "master commitLogMaxOffset " + max + ", slave commit log length " + len;
                        return false;
                    }
                    long mismatch = firstMismatch(slaveLog, masterLog, len);
                    last[0] = "length " + len + ", first differing byte at " + mismatch;
                    return mismatch < 0;
                } catch (Exception e) {
                    last[0] = e.toString();
                    return false;
                }
            });
            assertTrue(same, "the FerroMQ slave's commit log does not equal the Apache master's: " + last[0]);
            System.out.printf("[ha] the FerroMQ slave's commit log equals the Apache master's %d bytes%n",
                Files.size(slaveLog));

            MQClientAPIImpl api = admin.getDefaultMQAdminExtImpl().getMqClientInstance().getMQClientAPIImpl();
            awaitAllPulled(api, slaveAddr, brokerName, topic, sent, 60_000);
        });
    }

    // ------------------------------------------------------------------ sending and pulling

    static TopicConfig topicConfig(String topic) {
        return new TopicConfig(topic, QUEUES, QUEUES, PermName.PERM_READ | PermName.PERM_WRITE);
    }

    /** Sends bodies topic-from .. topic-(to-1), each of which must be SEND_OK. */
    static void sendAll(DefaultMQProducer producer, String topic, int from, int to, Set<String> sent) throws Exception {
        for (int i = from; i < to; i++) {
            String body = topic + "-" + i;
            SendResult r = Clients.sendWhenRouted(producer,
                new Message(topic, "TagA", body.getBytes(StandardCharsets.UTF_8)), null);
            assertEquals(SendStatus.SEND_OK, r.getSendStatus(), "status of message " + i + ": " + r);
            sent.add(body);
        }
    }

    /** Pulls every queue of {@code topic} from {@code addr} until the bodies are exactly {@code expected}. */
    static void awaitAllPulled(MQClientAPIImpl api, String addr, String brokerName, String topic,
                               Set<String> expected, long timeoutMs) throws InterruptedException {
        String group = "HaCG_" + Clients.uid();
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
        assertTrue(all, "pulling " + topic + " from the slave " + addr + " did not return the "
            + expected.size() + " bodies sent within " + timeoutMs + " ms; last try: " + last[0]);
        System.out.printf("[ha] pulled all %d bodies from the slave %s (%d ms of retries)%n", expected.size(), addr,
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
            // the subscription flag: the broker takes the subscription from this request, as it
            // does for DefaultMQPullConsumer (no heartbeat of this group reached the slave)
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

    /** -1 when the first {@code len} bytes of both files are equal, else where they first differ. */
    static long firstMismatch(Path a, Path b, long len) throws IOException {
        try (FileChannel ca = FileChannel.open(a, StandardOpenOption.READ);
             FileChannel cb = FileChannel.open(b, StandardOpenOption.READ)) {
            ByteBuffer ba = ByteBuffer.allocate(1 << 16);
            ByteBuffer bb = ByteBuffer.allocate(1 << 16);
            long pos = 0;
            // bounded by len
            while (pos < len) {
                int n = (int) Math.min(ba.capacity(), len - pos);
                ba.clear().limit(n);
                bb.clear().limit(n);
                readFully(ca, ba, pos);
                readFully(cb, bb, pos);
                if (ba.position() < n || bb.position() < n) {
                    return pos + Math.min(ba.position(), bb.position());
                }
                for (int i = 0; i < n; i++) {
                    if (ba.get(i) != bb.get(i)) {
                        return pos + i;
                    }
                }
                pos += n;
            }
            return -1;
        }
    }

    private static void readFully(FileChannel c, ByteBuffer buf, long pos) throws IOException {
        // bounded: each read advances or hits the end of the file
        while (buf.hasRemaining()) {
            int r = c.read(buf, pos + buf.position());
            if (r <= 0) {
                return;
            }
        }
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

    private void startFerroBroker(String name, Path dataDir, int port, String conf) throws Exception {
        Path confFile = work.resolve(name + ".conf");
        Files.writeString(confFile, conf);
        Path bin = FerroMQServer.binaryPath();
        Proc p = start(name, List.of(bin.toString(), "broker", "-c", confFile.toString(),
                "--data-dir", dataDir.toString(), "--listen", "127.0.0.1:" + port),
            Map.of(), work, READY);
        p.log("[harness] broker.conf: " + conf.trim().replace("\n", "; "));
        p.awaitReady(FERRO_READY_MS);
    }

    private void startApacheBroker(String name, String conf) throws Exception {
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
        p.awaitReady(APACHE_READY_MS);
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
            if (Boolean.getBoolean("ha.showOutput")) {
                System.out.println(diagnostics("-Dha.showOutput=true"));
            }
        } catch (Throwable t) {
            System.out.println(diagnostics("HaInteropTest failed: " + t));
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
        b.append("===== end of HaInteropTest diagnostics =====\n");
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
            }, "ha-" + name + "-" + tag);
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
            System.out.printf("[ha] %s ready after %d ms%n", name, elapsedMs());
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
