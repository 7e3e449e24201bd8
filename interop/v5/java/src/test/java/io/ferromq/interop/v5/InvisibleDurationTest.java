package io.ferromq.interop.v5;

import static io.ferromq.interop.v5.Clients.INVISIBLE;
import static io.ferromq.interop.v5.Clients.describe;
import static io.ferromq.interop.v5.Clients.describeAll;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.apache.rocketmq.client.apis.producer.SendReceipt;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * ChangeInvisibleDuration: a received message made invisible for longer is not redelivered when
 * its first invisible duration runs out, but after the new one, unacked, with delivery attempt 2.
 */
@ExtendWith(V5Extension.class)
class InvisibleDurationTest {

    @Test
    void changeInvisibleDurationPostponesRedeliveryWhichCountsAnAttempt() throws Exception {
        String topic = Resources.TOPIC_INVISIBLE;
        Producer producer = Clients.producer(topic);
        SimpleConsumer consumer = Clients.simple(Resources.GROUP_INVISIBLE, topic);
        try {
            SendReceipt sent = producer.send(Clients.message(topic, "invisible-1").setTag("inv")
                .setKeys("inv-key").addProperty("p", "v").build());
            List<Clients.Got> first = Clients.receiveUntil(consumer, INVISIBLE, false, Duration.ofSeconds(20),
                l -> !l.isEmpty());
            assertEquals(1, first.size(), "first delivery:\n  " + describeAll(first));
            MessageView m1 = first.get(0).view();
            long t0 = first.get(0).atMillis();
            assertEquals(sent.getMessageId(), m1.getMessageId());
            assertEquals(1, m1.getDeliveryAttempt(), describe(m1));

            Thread.sleep(2000);
            // invisible until ~t0 + 22 s instead of ~t0 + 10 s
            consumer.changeInvisibleDuration(m1, Duration.ofSeconds(20));
            long changedAt = System.currentTimeMillis();

            // Well past the first invisible duration (and the server's re-delivery slack): still hidden.
            List<Clients.Got> hidden = Clients.receiveFor(consumer, INVISIBLE, false,
                Duration.ofMillis(Math.max(0, t0 + 17_000 - System.currentTimeMillis())));
            assertTrue(hidden.isEmpty(), "redelivered before the extended invisible duration ran out:\n  "
                + describeAll(hidden));

            List<Clients.Got> second = Clients.receiveUntil(consumer, INVISIBLE, false, Duration.ofSeconds(30),
                l -> !l.isEmpty());
            assertEquals(1, second.size(), "redelivery:\n  " + describeAll(second));
            MessageView m2 = second.get(0).view();
            long t1 = second.get(0).atMillis();
            assertEquals(sent.getMessageId(), m2.getMessageId(), describe(m2));
            assertEquals("invisible-1", Clients.body(m2));
            assertEquals("inv", m2.getTag().orElse(null));
            assertEquals(List.of("inv-key"), List.copyOf(m2.getKeys()));
            assertEquals("v", m2.getProperties().get("p"));
            assertEquals(2, m2.getDeliveryAttempt(), "delivery attempt of the redelivery " + describe(m2));
            assertTrue(t1 >= changedAt + 20_000 - 1000,
                "redelivered " + (t1 - changedAt) + " ms after the change to 20 s");
            System.out.printf("[invisible] changed at +%d ms, redelivered at +%d ms (after the change: %d ms)%n",
                changedAt - t0, t1 - t0, t1 - changedAt);

            // m1 carries the receipt handle that changeInvisibleDuration returned: its invisible time
            // ran out (the message came again as m2), so acking with it is refused.
            String staleAck = DeadLetterTest.tryAck(consumer, m1);
            System.out.println("[invisible] ack with the expired receipt handle: " + staleAck);
            assertTrue(staleAck.startsWith("BadRequestException") && staleAck.contains("response-code=40013"),
                "ack with an expired receipt handle: want INVALID_RECEIPT_HANDLE (40013), got " + staleAck);
            consumer.ack(m2);
            List<Clients.Got> after = Clients.receiveFor(consumer, INVISIBLE, true, INVISIBLE.plusSeconds(4));
            assertTrue(after.isEmpty(), "redelivered after the ack:\n  " + describeAll(after));
        } finally {
            Clients.closeQuietly(consumer);
            Clients.closeQuietly(producer);
        }
    }
}
