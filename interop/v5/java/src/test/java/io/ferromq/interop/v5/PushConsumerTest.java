package io.ferromq.interop.v5;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.rocketmq.client.apis.consumer.ConsumeResult;
import org.apache.rocketmq.client.apis.consumer.PushConsumer;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * PushConsumer on a normal topic: every message is consumed; the one whose listener returned
 * FAILURE is delivered again (delivery attempt 2) and then succeeds; nothing is consumed twice.
 */
@ExtendWith(V5Extension.class)
class PushConsumerTest {

    @Test
    void consumesAllAndRedeliversAFailedMessage() throws Exception {
        String topic = Resources.TOPIC_PUSH;
        int n = 20;
        String failing = "push-7";
        Map<String, List<Integer>> attemptsByBody = new ConcurrentHashMap<>();
        Map<String, Long> firstFailureAt = new ConcurrentHashMap<>();
        Map<String, Long> successAt = new ConcurrentHashMap<>();
        List<String> problems = new CopyOnWriteArrayList<>();
        CountDownLatch done = new CountDownLatch(n);
        Producer producer = Clients.producer(topic);
        PushConsumer consumer = null;
        try {
            consumer = Clients.push(Resources.GROUP_PUSH, topic, m -> {
                String body = Clients.body(m);
                attemptsByBody.computeIfAbsent(body, k -> new CopyOnWriteArrayList<>()).add(m.getDeliveryAttempt());
                String i = body.substring("push-".length());
                if (!m.getKeys().contains("key-" + i) || !("tag" + (Integer.parseInt(i) % 3)).equals(m.getTag().orElse(""))
                    || !i.equals(m.getProperties().get("i"))) {
                    problems.add("fields of " + Clients.describe(m));
                }
                if (body.equals(failing) && m.getDeliveryAttempt() == 1) {
                    firstFailureAt.put(body, System.currentTimeMillis());
                    return ConsumeResult.FAILURE;
                }
                if (successAt.putIfAbsent(body, System.currentTimeMillis()) == null) {
                    done.countDown();
                } else {
                    problems.add("consumed twice: " + Clients.describe(m));
                }
                return ConsumeResult.SUCCESS;
            });
            Map<String, String> sent = new HashMap<>();
            for (int i = 0; i < n; i++) {
                var r = producer.send(Clients.message(topic, "push-" + i).setTag("tag" + (i % 3))
                    .setKeys("key-" + i).addProperty("i", Integer.toString(i)).build());
                sent.put("push-" + i, r.getMessageId().toString());
            }
            assertTrue(done.await(60, TimeUnit.SECONDS), "consumed " + successAt.keySet() + " attempts " + attemptsByBody);
            Thread.sleep(3000); // a duplicate or a further redelivery would show up now
            assertTrue(problems.isEmpty(), problems.toString());
            assertEquals(sent.keySet(), successAt.keySet(), "consumed successfully");
            for (Map.Entry<String, List<Integer>> e : attemptsByBody.entrySet()) {
                List<Integer> want = e.getKey().equals(failing) ? List.of(1, 2) : List.of(1);
                assertEquals(want, e.getValue(), "delivery attempts of " + e.getKey());
            }
            System.out.printf("[push] failed message redelivered %d ms after the FAILURE%n",
                successAt.get(failing) - firstFailureAt.get(failing));
        } finally {
            Clients.closeQuietly(consumer);
            Clients.closeQuietly(producer);
        }
    }
}
