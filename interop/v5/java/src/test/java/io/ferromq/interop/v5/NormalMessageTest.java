package io.ferromq.interop.v5;

import static io.ferromq.interop.v5.Clients.INVISIBLE;
import static io.ferromq.interop.v5.Clients.describe;
import static io.ferromq.interop.v5.Clients.describeAll;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.message.Message;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.apache.rocketmq.client.apis.producer.SendReceipt;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** Normal messages: sync and async send, SimpleConsumer receive + ack. */
@ExtendWith(V5Extension.class)
class NormalMessageTest {

    @Test
    void syncAndAsyncSendThenSimpleConsumerReceivesAndAcksEverything() throws Exception {
        String topic = Resources.TOPIC_NORMAL;
        String group = Resources.GROUP_NORMAL;
        int n = 16;
        Producer producer = Clients.producer(topic);
        SimpleConsumer consumer = Clients.simple(group, topic);
        try {
            long before = System.currentTimeMillis();
            Map<String, Integer> idToIndex = new HashMap<>();
            List<CompletableFuture<SendReceipt>> async = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                Message m = Clients.message(topic, "normal-" + i)
                    .setTag(i % 2 == 0 ? "TagA" : "TagB")
                    .setKeys("key-" + i, "alt-" + i)
                    .addProperty("seq", Integer.toString(i))
                    .addProperty("mode", i < n / 2 ? "sync" : "async")
                    .build();
                if (i < n / 2) {
                    SendReceipt r = producer.send(m);
                    assertNotNull(r.getMessageId());
                    idToIndex.put(r.getMessageId().toString(), i);
                } else {
                    async.add(producer.sendAsync(m));
                }
            }
            for (int i = 0; i < async.size(); i++) {
                SendReceipt r = async.get(i).get(15, TimeUnit.SECONDS);
                idToIndex.put(r.getMessageId().toString(), n / 2 + i);
            }
            assertEquals(n, idToIndex.size(), "distinct message ids from the send receipts");

            List<Clients.Got> got = Clients.receiveUntil(consumer, INVISIBLE, true, Duration.ofSeconds(30),
                l -> l.size() >= n);
            assertEquals(n, got.size(), "received:\n  " + describeAll(got));
            Set<String> seen = new HashSet<>();
            for (Clients.Got g : got) {
                MessageView m = g.view();
                String id = m.getMessageId().toString();
                assertTrue(seen.add(id), "duplicate " + describe(m));
                Integer i = idToIndex.get(id);
                assertNotNull(i, "message id not among the send receipts: " + describe(m));
                assertEquals(topic, m.getTopic());
                assertEquals("normal-" + i, Clients.body(m));
                assertEquals(i % 2 == 0 ? "TagA" : "TagB", m.getTag().orElse(null), describe(m));
                assertEquals(Set.of("key-" + i, "alt-" + i), new HashSet<>(m.getKeys()), describe(m));
                assertEquals(Integer.toString(i), m.getProperties().get("seq"), describe(m));
                assertEquals(i < n / 2 ? "sync" : "async", m.getProperties().get("mode"), describe(m));
                assertFalse(m.getMessageGroup().isPresent(), describe(m));
                assertFalse(m.getDeliveryTimestamp().isPresent(), describe(m));
                assertEquals(1, m.getDeliveryAttempt(), describe(m));
                assertTrue(m.getBornTimestamp() >= before - 1000 && m.getBornTimestamp() <= g.atMillis() + 1000,
                    "born timestamp " + m.getBornTimestamp() + " " + describe(m));
                assertFalse(m.getBornHost().isEmpty(), describe(m));
            }

            // Every message was acked: nothing comes back after the invisible duration runs out.
            List<Clients.Got> more = Clients.receiveFor(consumer, INVISIBLE, true,
                INVISIBLE.plusSeconds(5));
            assertTrue(more.isEmpty(), "redelivered after ack:\n  " + describeAll(more));
        } finally {
            Clients.closeQuietly(consumer);
            Clients.closeQuietly(producer);
        }
    }
}
