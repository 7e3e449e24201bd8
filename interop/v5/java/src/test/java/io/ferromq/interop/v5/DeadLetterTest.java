package io.ferromq.interop.v5;

import static io.ferromq.interop.v5.Clients.INVISIBLE;
import static io.ferromq.interop.v5.Clients.describe;
import static io.ferromq.interop.v5.Clients.describeAll;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.apache.rocketmq.client.apis.ClientException;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.apache.rocketmq.client.apis.producer.SendReceipt;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * A message never acked is redelivered after each invisible duration with the delivery attempt
 * counting up, until the group's retryMaxTimes (2) retries are spent: 3 deliveries, then it is
 * moved to %DLQ%group, where a consumer of that topic finds it with body, tag, keys and properties.
 */
@ExtendWith(V5Extension.class)
class DeadLetterTest {

    @Test
    void unackedMessageIsRetriedThenDeadLettered() throws Exception {
        String topic = Resources.TOPIC_DLQ;
        String group = Resources.GROUP_DLQ;
        int maxAttempts = Resources.RETRY_MAX_TIMES + 1;
        Producer producer = Clients.producer(topic);
        SimpleConsumer consumer = Clients.simple(group, topic);
        SimpleConsumer dlqConsumer = null;
        try {
            SendReceipt sent = producer.send(Clients.message(topic, "doomed").setTag("dlq")
                .setKeys("dlq-key").addProperty("p", "v").build());
            long start = System.currentTimeMillis();
            // Never ack: each delivery comes back after the 10 s invisible duration.
            List<Clients.Got> got = Clients.receiveUntil(consumer, INVISIBLE, false,
                Duration.ofSeconds(15L * maxAttempts + 10), l -> l.size() > maxAttempts);
            List<Integer> attempts = new ArrayList<>();
            List<Long> at = new ArrayList<>();
            for (Clients.Got g : got) {
                assertEquals(sent.getMessageId(), g.view().getMessageId(), describe(g.view()));
                assertEquals("doomed", Clients.body(g.view()));
                attempts.add(g.view().getDeliveryAttempt());
                at.add(g.atMillis() - start);
            }
            System.out.printf("[dlq] delivery attempts %s at +ms %s%n", attempts, at);
            List<Integer> expected = new ArrayList<>();
            for (int i = 1; i <= maxAttempts; i++) {
                expected.add(i);
            }
            assertEquals(expected, attempts, "delivery attempts; deliveries:\n  " + describeAll(got));
            for (int i = 1; i < at.size(); i++) {
                assertTrue(at.get(i) - at.get(i - 1) >= INVISIBLE.toMillis() - 1000,
                    "redelivered before the invisible duration ran out: +ms " + at);
            }

            // The last receive above ran until its deadline with nothing more: the message went to the
            // DLQ when the next attempt was due.
            dlqConsumer = Clients.simple(Resources.GROUP_DLQ_READER, "%DLQ%" + group);
            List<Clients.Got> dead = Clients.receiveUntil(dlqConsumer, INVISIBLE, true, Duration.ofSeconds(20),
                l -> !l.isEmpty());
            dead.addAll(Clients.receiveFor(dlqConsumer, INVISIBLE, true, Duration.ofSeconds(2)));
            assertEquals(1, dead.size(), "in %DLQ%" + group + ":\n  " + describeAll(dead));
            MessageView d = dead.get(0).view();
            System.out.println("[dlq] dead letter: " + describe(d));
            assertEquals("doomed", Clients.body(d));
            assertEquals("dlq", d.getTag().orElse(null), describe(d));
            assertEquals(List.of("dlq-key"), List.copyOf(d.getKeys()), describe(d));
            assertEquals("v", d.getProperties().get("p"), describe(d));
            assertEquals("%DLQ%" + group, d.getTopic(), describe(d));
        } finally {
            Clients.closeQuietly(dlqConsumer);
            Clients.closeQuietly(consumer);
            Clients.closeQuietly(producer);
        }
    }

    /** Acks, returning "ok" or the client's exception as text. */
    static String tryAck(SimpleConsumer c, MessageView stale) {
        try {
            c.ack(stale);
            return "ok";
        } catch (ClientException e) {
            return e.getClass().getSimpleName() + ": " + e.getMessage();
        }
    }
}
