package io.ferromq.apachetools;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

import org.apache.rocketmq.client.impl.MQClientAPIImpl;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.message.Message;
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
    static final String FIRST_SEGMENT = "00000000000000000000";

    private ChildProcesses processes;
    private Clients clients;

    @BeforeAll
    static void notAgainstAnExternalInstall() {
        Assumptions.assumeFalse(FerroMQServer.external(),
            "-Dtarget.namesrv is set: this class starts its own FerroMQ and Apache brokers");
    }

    @BeforeEach
    void setUp() throws IOException {
        processes = new ChildProcesses("ha", "HaInteropTest");
    }

    @AfterEach
    void tearDown() {
        if (clients != null) {
            clients.close();
            clients = null;
        }
        processes.close();
    }

    // ------------------------------------------------------------------ tests

    @Test
    void apacheSlaveFollowsFerroMQMaster() throws Throwable {
        processes.diagnoseOnFailure(() -> {
            String brokerName = "broker-f";
            String ns = processes.startNamesrv();

            int masterPort = processes.brokerPort();
            int haPort = processes.freePort();
            Path fmaster = processes.work().resolve("fmaster");
            processes.startFerroBroker("fmaster", fmaster, masterPort, String.join("\n",
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
            admin.createAndUpdateTopicConfig(masterAddr, QueuePulls.topicConfig(topic));

            int slavePort = processes.brokerPort();
            Path aslave = processes.work().resolve("aslave");
            processes.launchApacheBroker("aslave", String.join("\n",
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
                "")).awaitReady(ChildProcesses.APACHE_READY_MS);
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
            long pulledMs = QueuePulls.awaitAllPulled(api, slaveAddr, brokerName, topic, sent, 90_000);
            System.out.printf("[ha] pulled all %d bodies from the slave %s (%d ms of retries)%n", sent.size(), slaveAddr,
                pulledMs);

            // (c) the slave's metadata copy ran (the topic arrived with it) and found every
            // request it makes of a master answered: no unsupported code, no missing field.
            Path logs = processes.work().resolve("aslave-home").resolve("logs").resolve("rocketmqlogs");
            for (String f : List.of("broker.log", "broker_default.log")) {
                Path log = logs.resolve(f);
                if (!Files.isRegularFile(log)) {
                    continue;
                }
                String text = Files.readString(log, StandardCharsets.UTF_8);
                for (String bad : List.of("not supported", "is null", "SyncConsumerOffset Exception",
                        "syncTimerCheckPoint Exception", "SyncTimerMetrics Exception", "syncMessageRequestMode Exception")) {
                    assertFalse(text.contains(bad), log + " reports '" + bad + "':\n" + ChildProcesses.tailOf(log, 40));
                }
            }
        });
    }

    @Test
    void ferroMQSlaveFollowsApacheMaster() throws Throwable {
        processes.diagnoseOnFailure(() -> {
            String brokerName = "broker-a2";
            String ns = processes.startNamesrv();

            int masterPort = processes.brokerPort();
            int haPort = processes.freePort();
            Path amaster = processes.work().resolve("amaster");
            processes.launchApacheBroker("amaster", String.join("\n",
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
                "")).awaitReady(ChildProcesses.APACHE_READY_MS);
            String masterAddr = "127.0.0.1:" + masterPort;

            clients = new Clients(ns);
            DefaultMQAdminExt admin = clients.admin();
            String topic = "HaA2F_" + Clients.uid();
            admin.createAndUpdateTopicConfig(masterAddr, QueuePulls.topicConfig(topic));

            DefaultMQProducer producer = clients.producer("HaPG_" + Clients.uid());
            Set<String> sent = new LinkedHashSet<>();
            sendAll(producer, topic, 0, 300, sent);

            int slavePort = processes.brokerPort();
            Path fslave = processes.work().resolve("fslave");
            processes.startFerroBroker("fslave", fslave, slavePort, String.join("\n",
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
            long pulledMs = QueuePulls.awaitAllPulled(api, slaveAddr, brokerName, topic, sent, 60_000);
            System.out.printf("[ha] pulled all %d bodies from the slave %s (%d ms of retries)%n", sent.size(), slaveAddr,
                pulledMs);
        });
    }

    // ------------------------------------------------------------------ sending and comparing

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
}
