package io.ferromq.interop;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.message.Message;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Draining a broker as operators do before a restart, seen by a running Java 4.x producer and
 * consumer: after {@code wipeWritePerm} the producer's next route refresh leaves it no queue to
 * send to while the consumer keeps reading what is stored; after {@code addWritePerm} the same
 * producer sends again. The clients are started before the wipe, so their cached routes must
 * follow the name server, not be fetched fresh.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class WritePermDrainTest {

    /** The Java client polls routes every 30 s by default; a short poll keeps the test short. */
    static final int ROUTE_POLL_MS = 1_000;
    static final long PHASE_TIMEOUT_MS = 30_000;

    private final String uid = UUID.randomUUID().toString().replace("-", "").substring(0, 12);

    @Test
    void aDrainedBrokerTakesNoSendsButServesReadsUntilWritableAgain() throws Exception {
        try (FerroMQBroker broker = FerroMQBroker.start()) {
            String topic = "JavaDrain_" + uid;
            DefaultMQProducer producer = new DefaultMQProducer("pg_drain_" + uid);
            producer.setNamesrvAddr(broker.namesrvAddr());
            producer.setInstanceName("drain-p-" + uid);
            producer.setVipChannelEnabled(false);
            producer.setPollNameServerInterval(ROUTE_POLL_MS);
            producer.setRetryTimesWhenSendFailed(0);
            producer.start();
            DefaultMQPushConsumer consumer = new DefaultMQPushConsumer("cg_drain_" + uid);
            try {
                assertEquals(SendStatus.SEND_OK, send(producer, topic, "before").getSendStatus());

                String wiped = broker.admin("wipeWritePerm", "-b", "broker-a");
                assertTrue(wiped.matches("(?s).*wipe write perm of broker\\[broker-a] in name server\\[.+] OK, [1-9][0-9]*.*"),
                    "wipeWritePerm: " + wiped);
                String refusal = awaitRefusal(producer, topic, broker);
                assertTrue(refusal.contains("No route info"),
                    "a drained broker's topic should leave the producer no route, got: " + refusal);

                // Reads are not drained: a consumer started now still gets the stored message.
                Received rx = Clients.recording(consumer, broker, "drain-c-" + uid, topic);
                consumer.setPollNameServerInterval(ROUTE_POLL_MS);
                consumer.start();
                awaitBodies(rx, List.of("before"), broker);

                String added = broker.admin("addWritePerm", "-b", "broker-a");
                assertTrue(added.matches("(?s).*add write perm of broker\\[broker-a] in name server\\[.+] OK, [1-9][0-9]*.*"),
                    "addWritePerm: " + added);
                awaitSendOk(producer, topic, "after", broker);
                awaitBodies(rx, List.of("before", "after"), broker);
            } finally {
                consumer.shutdown();
                producer.shutdown();
            }
        }
    }

    private static SendResult send(DefaultMQProducer p, String topic, String body)
        throws Exception {
        return p.send(new Message(topic, body.getBytes(StandardCharsets.UTF_8)));
    }

    /**
     * Sends until the producer refuses and returns the refusal's text. Until its route refreshes
     * the producer still sends to the broker, which takes them: the wipe is the name server's.
     */
    private String awaitRefusal(DefaultMQProducer p, String topic, FerroMQBroker broker) throws Exception {
        long deadline = System.currentTimeMillis() + PHASE_TIMEOUT_MS;
        int accepted = 0;
        while (System.currentTimeMillis() < deadline) {
            try {
                send(p, topic, "stale-route");
                accepted++;
            } catch (Exception refused) {
                return String.valueOf(refused.getMessage());
            }
            Thread.sleep(200);
        }
        throw new AssertionError("the producer still sent " + accepted + " messages "
            + PHASE_TIMEOUT_MS + " ms after wipeWritePerm\n" + broker.output());
    }

    private void awaitSendOk(DefaultMQProducer p, String topic, String body, FerroMQBroker broker) throws Exception {
        long deadline = System.currentTimeMillis() + PHASE_TIMEOUT_MS;
        String last = "";
        while (System.currentTimeMillis() < deadline) {
            try {
                assertEquals(SendStatus.SEND_OK, send(p, topic, body).getSendStatus());
                return;
            } catch (Exception stillDrained) {
                last = String.valueOf(stillDrained.getMessage());
            }
            Thread.sleep(200);
        }
        throw new AssertionError("no send succeeded " + PHASE_TIMEOUT_MS + " ms after addWritePerm; last: "
            + last + "\n" + broker.output());
    }

    private static void awaitBodies(Received rx, List<String> bodies, FerroMQBroker broker) throws InterruptedException {
        long deadline = System.currentTimeMillis() + PHASE_TIMEOUT_MS;
        while (System.currentTimeMillis() < deadline) {
            List<String> got = new ArrayList<>();
            rx.all().forEach(m -> got.add(Received.body(m)));
            if (got.containsAll(bodies)) {
                return;
            }
            Thread.sleep(200);
        }
        throw new AssertionError("the consumer did not receive " + bodies + " within " + PHASE_TIMEOUT_MS
            + " ms:" + Received.describe(rx.all()) + "\n" + broker.output());
    }
}
