package io.ferromq.interop;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The Java 4.x client's namespaces ({@code setNamespace}): the client wraps topic and group as
 * {@code <ns>%<name>} and its retry topic as {@code %RETRY%<ns>%<group>}. Two tenants using the
 * same topic and group names must stay apart, a retried message must come back to its own
 * tenant's group, and the admin tool must list the namespaced names as the broker keeps them.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class NamespaceTest {

    static final long RECEIVE_TIMEOUT_MS = 60_000;
    /** Every delay level one second, so the retry comes back quickly. */
    static final String FAST_RETRY = "messageDelayLevel=" + "1s ".repeat(18).trim() + "\n";

    private final String uid = UUID.randomUUID().toString().replace("-", "").substring(0, 12);

    /** One tenant's consumer: fails each message's first delivery, so each comes back once. */
    static final class Tenant {
        final String namespace;
        final DefaultMQPushConsumer consumer = new DefaultMQPushConsumer();
        final List<MessageExt> deliveries = new CopyOnWriteArrayList<>();
        final Map<String, AtomicInteger> seen = new ConcurrentHashMap<>();

        Tenant(String namespace) {
            this.namespace = namespace;
        }

        MessageListenerConcurrently listener() {
            return (msgs, ctx) -> {
                deliveries.addAll(msgs);
                boolean firstTime = false;
                for (MessageExt m : msgs) {
                    firstTime |= seen.computeIfAbsent(Received.body(m), k -> new AtomicInteger()).incrementAndGet() == 1;
                }
                return firstTime ? ConsumeConcurrentlyStatus.RECONSUME_LATER : ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
            };
        }

        List<String> bodies() {
            List<String> out = new ArrayList<>();
            deliveries.forEach(m -> out.add(Received.body(m)));
            return out;
        }
    }

    @Test
    void tenantsWithTheSameNamesStayApartAndRetryInTheirOwnNamespace() throws Exception {
        try (FerroMQBroker broker = FerroMQBroker.start(FAST_RETRY)) {
            String topic = "JavaNs_" + uid;
            String group = "cg_ns_" + uid;
            Tenant a = new Tenant("tenant-a-" + uid);
            Tenant b = new Tenant("tenant-b-" + uid);
            List<DefaultMQProducer> producers = new ArrayList<>();
            try {
                for (Tenant t : List.of(a, b)) {
                    DefaultMQProducer p = new DefaultMQProducer("pg_ns_" + uid);
                    p.setNamespace(t.namespace);
                    p.setNamesrvAddr(broker.namesrvAddr());
                    p.setInstanceName("ns-p-" + t.namespace);
                    p.setVipChannelEnabled(false);
                    p.start();
                    producers.add(p);
                    for (int i = 0; i < 3; i++) {
                        Message m = new Message(topic, (t.namespace + "-" + i).getBytes(StandardCharsets.UTF_8));
                        assertEquals(SendStatus.SEND_OK, p.send(m).getSendStatus());
                    }
                }
                for (Tenant t : List.of(a, b)) {
                    t.consumer.setConsumerGroup(group);
                    t.consumer.setNamespace(t.namespace);
                    t.consumer.setNamesrvAddr(broker.namesrvAddr());
                    t.consumer.setInstanceName("ns-c-" + t.namespace);
                    t.consumer.setVipChannelEnabled(false);
                    t.consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
                    t.consumer.subscribe(topic, "*");
                    t.consumer.registerMessageListener(t.listener());
                    t.consumer.start();
                }

                long deadline = System.currentTimeMillis() + RECEIVE_TIMEOUT_MS;
                while (System.currentTimeMillis() < deadline && !(retriedAll(a) && retriedAll(b))) {
                    Thread.sleep(200);
                }
                for (Tenant t : List.of(a, b)) {
                    assertTrue(retriedAll(t), t.namespace + " should get each of its 3 messages twice (once, then"
                        + " from its retry topic), got " + t.bodies() + "\n" + broker.output());
                    for (MessageExt m : t.deliveries) {
                        assertTrue(Received.body(m).startsWith(t.namespace + "-"),
                            t.namespace + " received another tenant's message " + Received.body(m));
                        assertEquals(topic, m.getTopic(), "the client shows the topic without its namespace");
                    }
                    assertTrue(t.deliveries.stream().anyMatch(m -> m.getReconsumeTimes() == 1),
                        t.namespace + ": no redelivery carried reconsumeTimes 1");
                }

                String topics = broker.admin("topicList");
                for (Tenant t : List.of(a, b)) {
                    for (String name : List.of(t.namespace + "%" + topic, "%RETRY%" + t.namespace + "%" + group)) {
                        assertTrue(topics.lines().anyMatch(l -> l.trim().equals(name)),
                            "topicList lacks " + name + ":\n" + topics);
                    }
                }
                assertTrue(topics.lines().noneMatch(l -> l.trim().equals(topic)),
                    "the topic exists without a namespace too:\n" + topics);
            } finally {
                a.consumer.shutdown();
                b.consumer.shutdown();
                producers.forEach(DefaultMQProducer::shutdown);
            }
        }
    }

    private static boolean retriedAll(Tenant t) {
        if (t.seen.size() < 3) {
            return false;
        }
        return t.seen.values().stream().allMatch(n -> n.get() >= 2);
    }
}
