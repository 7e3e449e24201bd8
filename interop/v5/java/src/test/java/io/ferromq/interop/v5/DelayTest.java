package io.ferromq.interop.v5;

import static io.ferromq.interop.v5.Clients.INVISIBLE;
import static io.ferromq.interop.v5.Clients.describe;
import static io.ferromq.interop.v5.Clients.describeAll;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** Delay messages: a delivery timestamp ~3 s ahead holds each message back until then. */
@ExtendWith(V5Extension.class)
class DelayTest {
    /** Clock granularity of the server's timer (Apache's timer wheel ticks every second). */
    static final long EARLY_TOLERANCE_MS = 1000;

    @Test
    void deliveryTimestampHoldsMessagesBackUntilDue() throws Exception {
        String topic = Resources.TOPIC_DELAY;
        Producer producer = Clients.producer(topic);
        SimpleConsumer consumer = Clients.simple(Resources.GROUP_DELAY, topic);
        try {
            // The consumer polls from before the send, so an early delivery would be seen early.
            Clients.receiveFor(consumer, INVISIBLE, true, Duration.ofSeconds(1));
            Map<String, Long> due = new HashMap<>();
            long sentAt = System.currentTimeMillis();
            for (int i = 0; i < 3; i++) {
                long ts = System.currentTimeMillis() + 3000 + i * 1000L;
                String body = "delay-" + i;
                producer.send(Clients.message(topic, body).setTag("later").setKeys(body)
                    .setDeliveryTimestamp(ts).build());
                due.put(body, ts);
            }
            List<Clients.Got> got = Clients.receiveUntil(consumer, INVISIBLE, true, Duration.ofSeconds(30),
                l -> l.size() >= due.size());
            assertEquals(due.size(), got.size(), "received:\n  " + describeAll(got));
            for (Clients.Got g : got) {
                MessageView m = g.view();
                String body = Clients.body(m);
                Long ts = due.get(body);
                assertTrue(ts != null, "unexpected " + describe(m));
                assertEquals(ts, m.getDeliveryTimestamp().orElse(null), "delivery timestamp " + describe(m));
                assertTrue(g.atMillis() >= ts - EARLY_TOLERANCE_MS,
                    body + " received " + (ts - g.atMillis()) + " ms before its delivery time");
                assertTrue(g.atMillis() <= ts + 15_000,
                    body + " received " + (g.atMillis() - ts) + " ms after its delivery time");
                assertEquals("later", m.getTag().orElse(null), describe(m));
                assertEquals(1, m.getDeliveryAttempt(), describe(m));
            }
            System.out.printf("[delay] sent at %d, lateness (ms): %s%n", sentAt,
                got.stream().map(g -> Clients.body(g.view()) + "=" + (g.atMillis() - due.get(Clients.body(g.view()))))
                    .toList());
        } finally {
            Clients.closeQuietly(consumer);
            Clients.closeQuietly(producer);
        }
    }
}
