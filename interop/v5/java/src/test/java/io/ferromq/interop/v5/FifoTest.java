package io.ferromq.interop.v5;

import static io.ferromq.interop.v5.Clients.INVISIBLE;
import static io.ferromq.interop.v5.Clients.describe;
import static io.ferromq.interop.v5.Clients.describeAll;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.rocketmq.client.apis.consumer.ConsumeResult;
import org.apache.rocketmq.client.apis.consumer.PushConsumer;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * FIFO topics with orderly consumer groups: 30 messages over 3 message groups (sent interleaved,
 * one at a time), consumed in per-group order by a SimpleConsumer and by a PushConsumer.
 */
@ExtendWith(V5Extension.class)
class FifoTest {
    static final int PER_GROUP = 10;
    static final String[] GROUPS = {"order-a", "order-b", "order-c"};

    /** Sends seq 0..PER_GROUP-1 of every message group, interleaved a0 b0 c0 a1 b1 c1 ... */
    static Map<String, String> sendInterleaved(Producer p, String topic, String prefix) throws Exception {
        Map<String, String> idToLabel = new HashMap<>();
        for (int seq = 0; seq < PER_GROUP; seq++) {
            for (String g : GROUPS) {
                String label = prefix + ":" + g + ":" + seq;
                var r = p.send(Clients.message(topic, label)
                    .setMessageGroup(g)
                    .setTag("fifo")
                    .setKeys(label)
                    .addProperty("seq", Integer.toString(seq))
                    .build());
                idToLabel.put(r.getMessageId().toString(), label);
            }
        }
        return idToLabel;
    }

    static void assertPerGroupOrder(Map<String, List<Integer>> perGroup, String context) {
        List<Integer> expected = new ArrayList<>();
        for (int i = 0; i < PER_GROUP; i++) {
            expected.add(i);
        }
        assertEquals(GROUPS.length, perGroup.size(), "message groups seen: " + perGroup + context);
        for (String g : GROUPS) {
            assertEquals(expected, perGroup.get(g), "order of message group " + g + context);
        }
    }

    @Test
    void simpleConsumerReceivesEachMessageGroupInOrder() throws Exception {
        String topic = Resources.TOPIC_FIFO;
        Producer producer = Clients.producer(topic);
        SimpleConsumer consumer = Clients.simple(Resources.GROUP_FIFO, topic);
        try {
            Map<String, String> ids = sendInterleaved(producer, topic, "simple");
            int total = PER_GROUP * GROUPS.length;
            // receive() hands out, per message group, only what follows the acked messages; ack in order
            List<Clients.Got> got = Clients.receiveUntil(consumer, INVISIBLE, true, Duration.ofSeconds(40),
                l -> l.size() >= total);
            assertEquals(total, got.size(), "received:\n  " + describeAll(got));
            Map<String, List<Integer>> perGroup = new HashMap<>();
            for (Clients.Got g : got) {
                MessageView m = g.view();
                String label = ids.get(m.getMessageId().toString());
                assertEquals(label, Clients.body(m), describe(m));
                String group = m.getMessageGroup().orElse("(none)");
                assertEquals(label.split(":")[1], group, describe(m));
                assertEquals("fifo", m.getTag().orElse(null), describe(m));
                assertEquals(List.of(label), new ArrayList<>(m.getKeys()), describe(m));
                assertEquals(1, m.getDeliveryAttempt(), describe(m));
                perGroup.computeIfAbsent(group, k -> new ArrayList<>())
                    .add(Integer.parseInt(m.getProperties().get("seq")));
            }
            assertPerGroupOrder(perGroup, "\nreceived:\n  " + describeAll(got));
            List<Clients.Got> more = Clients.receiveFor(consumer, INVISIBLE, true, Duration.ofSeconds(3));
            assertTrue(more.isEmpty(), "more after all were acked:\n  " + describeAll(more));
        } finally {
            Clients.closeQuietly(consumer);
            Clients.closeQuietly(producer);
        }
    }

    /**
     * The listener fails order-b seq 4 once: the client retries it (delivery attempt 2) before
     * anything after it in order-b is consumed; the other groups are not held up.
     */
    @Test
    void pushConsumerConsumesEachMessageGroupInOrderAcrossAFailure() throws Exception {
        String topic = Resources.TOPIC_FIFO_PUSH;
        int total = PER_GROUP * GROUPS.length;
        Map<String, List<Integer>> perGroup = new ConcurrentHashMap<>();
        List<String> calls = new CopyOnWriteArrayList<>();
        Map<String, Integer> busy = new ConcurrentHashMap<>();
        List<String> overlaps = new CopyOnWriteArrayList<>();
        AtomicBoolean failedOnce = new AtomicBoolean();
        CountDownLatch done = new CountDownLatch(total);
        Producer producer = Clients.producer(topic);
        PushConsumer consumer = null;
        try {
            consumer = Clients.push(Resources.GROUP_FIFO_PUSH, topic, m -> {
                String group = m.getMessageGroup().orElse("(none)");
                int seq = Integer.parseInt(m.getProperties().get("seq"));
                calls.add(group + ":" + seq + "#" + m.getDeliveryAttempt());
                if (busy.merge(group, 1, Integer::sum) > 1) {
                    overlaps.add(group + ":" + seq);
                }
                try {
                    Thread.sleep(20); // widen the window in which a second message of the group would overlap
                    if (group.equals("order-b") && seq == 4 && failedOnce.compareAndSet(false, true)) {
                        return ConsumeResult.FAILURE;
                    }
                    perGroup.computeIfAbsent(group, k -> new CopyOnWriteArrayList<>()).add(seq);
                    done.countDown();
                    return ConsumeResult.SUCCESS;
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return ConsumeResult.FAILURE;
                } finally {
                    busy.merge(group, -1, Integer::sum);
                }
            });
            sendInterleaved(producer, topic, "push");
            assertTrue(done.await(60, TimeUnit.SECONDS), "consumed " + perGroup + "\ncalls " + calls);
            Thread.sleep(2000); // anything consumed twice would show up now
            String context = "\ncalls (group:seq#attempt): " + calls;
            assertPerGroupOrder(perGroup, context);
            assertTrue(overlaps.isEmpty(), "listener ran twice at once for one message group: " + overlaps + context);
            assertTrue(calls.contains("order-b:4#1") && calls.contains("order-b:4#2"),
                "the failed message is retried with delivery attempt 2" + context);
            assertEquals(total + 1, calls.size(), "listener calls: every message once, the failed one twice" + context);
            int retry = calls.indexOf("order-b:4#2");
            int next = calls.indexOf("order-b:5#1");
            assertTrue(next > retry, "order-b seq 5 waited for the retry of seq 4" + context);
        } finally {
            Clients.closeQuietly(consumer);
            Clients.closeQuietly(producer);
        }
    }
}
