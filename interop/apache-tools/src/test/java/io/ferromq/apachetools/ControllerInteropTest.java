package io.ferromq.apachetools;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
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
import org.apache.rocketmq.remoting.protocol.body.BrokerReplicasInfo;
import org.apache.rocketmq.remoting.protocol.body.EpochEntryCache;
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
    static final int SENDS = 200;

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

    /** What a broker logs when another took the id both were offered; it then retries. */
    static final String LOST_BROKER_ID_RACE = "fail to apply broker id";

    private ChildProcesses processes;
    private Clients clients;

    @BeforeAll
    static void notAgainstAnExternalInstall() {
        Assumptions.assumeFalse(FerroMQServer.external(),
            "-Dtarget.namesrv is set: this class starts its own FerroMQ controller and Apache brokers");
    }

    @BeforeEach
    void setUp() throws IOException {
        processes = new ChildProcesses("ctl", "ControllerInteropTest");
    }

    @AfterEach
    void tearDown() {
        if (clients != null) {
            clients.close();
            clients = null;
        }
        processes.close();
    }

    // ------------------------------------------------------------------ test

    @Test
    void apacheBrokersFailOverUnderFerroMQController() throws Throwable {
        processes.diagnoseOnFailure(() -> {
            String ns = processes.startNamesrv();
            String ctl = processes.startController();

            // both brokers boot in parallel; each waits for the controller before it serves
            int port1 = processes.brokerPort();
            int port2 = processes.brokerPort();
            ChildProcesses.Proc b1 = launchApacheBroker("abroker1", port1, ns, ctl);
            ChildProcesses.Proc b2 = launchApacheBroker("abroker2", port2, ns, ctl);
            b1.awaitReady(ChildProcesses.APACHE_READY_MS);
            b2.awaitReady(ChildProcesses.APACHE_READY_MS);
            String addr1 = "127.0.0.1:" + port1;
            String addr2 = "127.0.0.1:" + port2;

            clients = new Clients(ns);
            DefaultMQAdminExt admin = clients.admin();

            // (1) one is elected master, and both end up in the in-sync set
            long t0 = System.nanoTime();
            BrokerReplicasInfo.ReplicasInfo[] info = {null};
            String[] last = {"nothing read yet"};
            boolean formed = Clients.await(60_000, () -> {
                BrokerReplicasInfo.ReplicasInfo r = ControllerState.replicas(admin, ctl, BROKER_NAME, last);
                if (r == null) {
                    return false;
                }
                info[0] = r;
                Set<String> inSync = ControllerState.aliveAddresses(r.getInSyncReplicas());
                return (addr1.equals(r.getMasterAddress()) || addr2.equals(r.getMasterAddress()))
                    && inSync.equals(Set.of(addr1, addr2));
            });
            assertTrue(formed, "within 60 s the controller did not show a master with both brokers in sync; last: "
                + last[0]);
            String masterAddr = info[0].getMasterAddress();
            long masterId = info[0].getMasterBrokerId();
            String otherAddr = masterAddr.equals(addr1) ? addr2 : addr1;
            ChildProcesses.Proc master = masterAddr.equals(addr1) ? b1 : b2;
            ChildProcesses.Proc other = master == b1 ? b2 : b1;
            System.out.printf("[ctl] master %s (id %d, epoch %d), in-sync set %s (epoch %d) after %d ms%n",
                masterAddr, masterId, info[0].getMasterEpoch(), ControllerState.aliveAddresses(info[0].getInSyncReplicas()),
                info[0].getSyncStateSetEpoch(), TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0));

            // (2) a topic on the master; the slave copies the master's topic table every 10 s
            // (ReplicasManager.handleSlaveSynchronize): wait for it, or it could not serve the
            // topic once it is master
            String topic = "CtlFailover_" + Clients.uid();
            admin.createAndUpdateTopicConfig(masterAddr, QueuePulls.topicConfig(topic));
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
            BrokerReplicasInfo.ReplicasInfo before = ControllerState.replicas(admin, ctl, BROKER_NAME, last);
            assertTrue(before != null && ControllerState.aliveAddresses(before.getInSyncReplicas()).equals(Set.of(addr1, addr2)),
                "after the sends the in-sync set is no longer both brokers: " + last[0]);
            System.out.printf("[ctl] %d sends SEND_OK on master %s with both brokers in sync%n", SENDS, masterAddr);

            // (3) SIGKILL the master; the controller must elect the other one
            long killedAt = System.nanoTime();
            master.kill();
            BrokerReplicasInfo.ReplicasInfo[] after = {null};
            boolean elected = Clients.await(60_000, () -> {
                BrokerReplicasInfo.ReplicasInfo r = ControllerState.replicas(admin, ctl, BROKER_NAME, last);
                after[0] = r;
                return r != null && otherAddr.equals(r.getMasterAddress()) && r.getMasterBrokerId() != masterId
                    && r.getMasterEpoch() > info[0].getMasterEpoch();
            });
            assertTrue(elected, "within 60 s of killing master " + masterAddr + " the controller did not elect "
                + otherAddr + "; last: " + last[0]);
            long electedMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - killedAt);
            System.out.printf("[ctl] killed %s; %s (id %d) elected master, epoch %d, in-sync %s, %d ms after the kill%n",
                masterAddr, otherAddr, after[0].getMasterBrokerId(), after[0].getMasterEpoch(),
                ControllerState.aliveAddresses(after[0].getInSyncReplicas()), electedMs);

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
            long pulledMs = QueuePulls.awaitAllPulled(api, otherAddr, BROKER_NAME, topic, sent, 60_000);
            System.out.printf("[ctl] pulled all %d bodies from %s (%d ms of retries)%n", sent.size(), otherAddr, pulledMs);

            EpochEntryCache epochs = admin.getBrokerEpochCache(otherAddr);
            System.out.println("[ctl] the new master's epochs: " + epochs.getEpochList());

            // (6) no controller request failed on either broker
            for (Path home : processes.apacheHomes()) {
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
                    if (msg.startsWith(LOST_BROKER_ID_RACE)) {
                        // both brokers booted at once, were both offered the next id and applied for
                        // it; the controller gives it to the first (Apache's controller refuses the
                        // second the same way) and the loser asks again for the next free id
                        continue;
                    }
                    if (CONTROLLER_FAILURES.stream().anyMatch(msg::contains)) {
                        bad.add(line);
                    }
                }
                assertTrue(bad.isEmpty(), log + " reports failed controller requests:\n" + String.join("\n", bad));
            }
            assertTrue(other.isAlive(), "the new master exited");
        });
    }

    // ------------------------------------------------------------------ brokers

    /** Starts an Apache broker in controller mode, configured as Apache's quick start; does not wait. */
    private ChildProcesses.Proc launchApacheBroker(String name, int listenPort, String ns, String ctl) throws Exception {
        Path store = processes.work().resolve(name);
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
            "haListenPort=" + processes.freePort(),
            "brokerIP1=127.0.0.1",
            "brokerIP2=127.0.0.1",
            "storePathRootDir=" + store,
            "storePathCommitLog=" + store.resolve("commitlog"),
            "storePathEpochFile=" + store.resolve("epochFileCheckpoint"),
            "");
        return processes.launchApacheBroker(name, conf);
    }
}
