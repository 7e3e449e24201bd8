package io.ferromq.apachetools;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.impl.consumer.RebalanceImpl;
import org.apache.rocketmq.client.impl.factory.MQClientInstance;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.MixAll;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageConst;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.common.message.MessageQueueAssignment;
import org.apache.rocketmq.common.message.MessageRequestMode;
import org.apache.rocketmq.remoting.protocol.admin.ConsumeStats;
import org.apache.rocketmq.remoting.protocol.admin.OffsetWrapper;
import org.apache.rocketmq.remoting.protocol.body.Connection;
import org.apache.rocketmq.remoting.protocol.body.ConsumerConnection;
import org.apache.rocketmq.remoting.protocol.heartbeat.ConsumeType;
import org.apache.rocketmq.remoting.protocol.heartbeat.MessageModel;
import org.apache.rocketmq.remoting.protocol.subscription.SubscriptionGroupConfig;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;
import org.apache.rocketmq.tools.command.CommandUtil;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * POP consumption over the remoting protocol with Apache's 5.5.0 Java client: the group is
 * switched to POP for the topic with {@code setMessageRequestMode} (SET_MESSAGE_REQUEST_MODE 401,
 * what {@code mqadmin setConsumeMode} sends to every master), and a {@code DefaultMQPushConsumer}
 * with {@code clientRebalance=false} asks the broker for its queues (QUERY_ASSIGNMENT 400). Seeing
 * mode POP it consumes with POP_MESSAGE (200050), ACK_MESSAGE (200051) and, for a message the
 * listener answers with RECONSUME_LATER, CHANGE_MESSAGE_INVISIBLETIME (200053) to the first POP
 * delay level (10 s).
 */
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class RemotingPopConsumerTest {

    @RegisterExtension
    static final FerroMQExtension FERRO = new FerroMQExtension();

    static final String CLUSTER = "DefaultCluster";
    static final int QUEUES = 4;
    static final int N = 40;
    /** The message whose first delivery is answered with RECONSUME_LATER. */
    static final int CHOSEN = 17;
    /**
     * The client's invisible time for popped messages (default 60 s, at least 5 s), so that a
     * message whose ACK did not take effect would come back within the test.
     */
    static final long POP_INVISIBLE_MS = 8_000;
    /** The client's first POP delay level: RECONSUME_LATER makes the message invisible for 10 s. */
    static final long RETRY_INVISIBLE_MS = 10_000;
    static final String PROP = "popIndex";

    static Clients clients;
    static DefaultMQAdminExt admin;
    final String uid = Clients.uid();

    /** A delivery and when it arrived. */
    record Delivery(MessageExt msg, long atMillis) {
    }

    @BeforeAll
    static void startAdmin() throws Exception {
        clients = new Clients(FERRO.server().namesrvAddr());
        admin = clients.admin();
    }

    @AfterAll
    static void shutdown() {
        if (clients != null) {
            clients.close();
        }
    }

    @Test
    void popConsumerAssignedByBrokerConsumesEverythingAndRetriesOnce() throws Exception {
        long t0 = System.currentTimeMillis();
        String topic = "PopTopic_" + uid;
        String group = "PopCG_" + uid;

        // 1. topic (4 queues) and group through the admin API
        admin.createTopic(CLUSTER, topic, QUEUES, new HashMap<>());
        awaitRoute(topic);
        Set<String> masters = CommandUtil.fetchMasterAddrByClusterName(admin, CLUSTER);
        assertFalse(masters.isEmpty(), "masters of " + CLUSTER);
        for (String addr : masters) {
            SubscriptionGroupConfig cfg = new SubscriptionGroupConfig();
            cfg.setGroupName(group);
            admin.createAndUpdateSubscriptionGroupConfig(addr, cfg);
        }

        // 2. POP for (topic, group) on every master, as `mqadmin setConsumeMode -c` does (popShareQueueNum 0)
        for (String addr : masters) {
            admin.setMessageRequestMode(addr, topic, group, MessageRequestMode.POP, 0, 5_000);
        }

        // 3. a push consumer that takes its assignment from the broker
        ConcurrentLinkedQueue<Delivery> deliveries = new ConcurrentLinkedQueue<>();
        Map<String, Integer> indexByBody = new ConcurrentHashMap<>();
        String chosenBody = body(CHOSEN);
        AtomicBoolean refused = new AtomicBoolean();
        DefaultMQPushConsumer c = clients.pushConsumer(group, topic, (msgs, ctx) -> {
            long now = System.currentTimeMillis();
            ConsumeConcurrentlyStatus status = ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
            for (MessageExt m : msgs) {
                deliveries.add(new Delivery(m, now));
                if (chosenBody.equals(new String(m.getBody(), StandardCharsets.UTF_8)) && refused.compareAndSet(false, true)) {
                    status = ConsumeConcurrentlyStatus.RECONSUME_LATER;
                }
            }
            return status;
        });
        c.setClientRebalance(false);
        c.setPopInvisibleTime(POP_INVISIBLE_MS);
        c.setPopBatchNums(16);
        // one message per listener call, so RECONSUME_LATER concerns the chosen message only
        c.setConsumeMessageBatchMaxSize(1);
        clients.start(c);
        RebalanceImpl rebalance = c.getDefaultMQPushConsumerImpl().getRebalanceImpl();
        boolean popping = Clients.await(20_000, () -> rebalance.getPopProcessQueueTable().keySet().stream()
            .anyMatch(q -> q.getTopic().equals(topic)));
        long assignedAt = System.currentTimeMillis();
        assertTrue(popping, "the consumer got no POP assignment for " + topic + " within 20 s (QUERY_ASSIGNMENT); pop "
            + rebalance.getPopProcessQueueTable().keySet() + ", pull " + rebalance.getProcessQueueTable().keySet());
        assertFalse(rebalance.getProcessQueueTable().keySet().stream().anyMatch(q -> q.getTopic().equals(topic)),
            "no queue of " + topic + " may be pulled in POP mode: " + rebalance.getProcessQueueTable().keySet());

        // what QUERY_ASSIGNMENT answers, asked the same way the client does
        MQClientInstance factory = c.getDefaultMQPushConsumerImpl().getmQClientFactory();
        String strategy = rebalance.getAllocateMessageQueueStrategy().getName();
        Set<MessageQueueAssignment> assigned = factory.queryAssignment(topic, group, strategy, MessageModel.CLUSTERING, 5_000);
        assertNotNull(assigned, "QUERY_ASSIGNMENT of " + topic);
        // Apache, popShareQueueNum 0: every consumer pops every queue, one assignment per broker, queue id -1
        Set<String> brokerNames = new HashSet<>();
        for (MessageQueueAssignment a : assigned) {
            assertEquals(MessageRequestMode.POP, a.getMode(), "mode of " + a);
            assertEquals(topic, a.getMessageQueue().getTopic(), "topic of " + a);
            assertEquals(-1, a.getMessageQueue().getQueueId(), "with popShareQueueNum 0 the queue id is -1 (pop all queues): " + a);
            brokerNames.add(a.getMessageQueue().getBrokerName());
        }
        assertEquals(Set.of("broker-a"), brokerNames, "assignments of " + topic + ": " + assigned);
        assertEquals(1, assigned.size(), "one assignment per broker: " + assigned);
        String retryTopic = MixAll.getRetryTopic(group);
        Set<MessageQueueAssignment> retryAssigned = factory.queryAssignment(retryTopic, group, strategy,
            MessageModel.CLUSTERING, 5_000);
        assertNotNull(retryAssigned, "QUERY_ASSIGNMENT of " + retryTopic);
        assertFalse(retryAssigned.isEmpty(), "assignments of " + retryTopic);
        for (MessageQueueAssignment a : retryAssigned) {
            assertEquals(MessageRequestMode.PULL, a.getMode(), "a %RETRY% topic is always PULL: " + a);
        }

        // 4. N messages with keys and a user property
        DefaultMQProducer p = clients.producer("PopPG_" + uid);
        Map<String, SendResult> sent = new TreeMap<>();
        long sentAt = System.currentTimeMillis();
        for (int i = 0; i < N; i++) {
            Message m = new Message(topic, "TagP", key(i), body(i).getBytes(StandardCharsets.UTF_8));
            m.putUserProperty(PROP, String.valueOf(i));
            SendResult r = Clients.sendWhenRouted(p, m, null);
            assertEquals(SendStatus.SEND_OK, r.getSendStatus(), "send " + i + ": " + r);
            sent.put(body(i), r);
            indexByBody.put(body(i), i);
        }
        long sentDone = System.currentTimeMillis();

        boolean all = Clients.await(40_000, () -> distinctBodies(deliveries).size() == N
            && count(deliveries, chosenBody) >= 2);
        long allAt = System.currentTimeMillis();
        assertTrue(all, "within 40 s: " + distinctBodies(deliveries).size() + " of " + N
            + " messages consumed, the chosen one delivered " + count(deliveries, chosenBody) + " times");
        long firstAllAt = 0;
        for (Delivery d : deliveries) {
            firstAllAt = Math.max(firstAllAt, d.msg().getReconsumeTimes() == 0 ? d.atMillis() : 0);
        }

        // nothing else comes back: unacknowledged messages would, POP_INVISIBLE_MS after their pop
        // (the redelivery was popped with the same invisible time)
        long quietUntil = Math.max(firstAllAt, lastAt(deliveries)) + POP_INVISIBLE_MS + 4_000;
        Thread.sleep(Math.max(0, quietUntil - System.currentTimeMillis()));

        Map<String, List<Delivery>> byBody = new TreeMap<>();
        for (Delivery d : deliveries) {
            byBody.computeIfAbsent(new String(d.msg().getBody(), StandardCharsets.UTF_8), k -> new ArrayList<>()).add(d);
        }
        assertEquals(sent.keySet(), byBody.keySet(), "bodies consumed");
        for (Map.Entry<String, List<Delivery>> e : byBody.entrySet()) {
            int i = indexByBody.get(e.getKey());
            List<Delivery> ds = e.getValue();
            assertEquals(i == CHOSEN ? 2 : 1, ds.size(), "deliveries of message " + i + " (" + (i == CHOSEN
                ? "refused once" : "acknowledged at once") + "): " + describe(ds));
            for (int k = 0; k < ds.size(); k++) {
                MessageExt x = ds.get(k).msg();
                String what = "delivery " + (k + 1) + " of message " + i + "; " + x.getProperties();
                assertEquals(topic, x.getTopic(), "topic of " + what);
                assertEquals(key(i), x.getKeys(), "keys of " + what);
                assertEquals("TagP", x.getTags(), "tag of " + what);
                assertEquals(String.valueOf(i), x.getProperty(PROP), "user property of " + what);
                assertEquals(sent.get(e.getKey()).getMsgId(), x.getMsgId(), "UNIQ_KEY of " + what);
                assertEquals(k, x.getReconsumeTimes(), "reconsumeTimes of " + what);
                assertNotNull(x.getProperty(MessageConst.PROPERTY_POP_CK),
                    "POP_CK (set by the client on popped messages only) on " + what);
            }
        }
        List<Delivery> chosen = byBody.get(chosenBody);
        long gap = chosen.get(1).atMillis() - chosen.get(0).atMillis();
        assertTrue(gap >= RETRY_INVISIBLE_MS - 1_000, "after RECONSUME_LATER the client makes the message invisible for "
            + RETRY_INVISIBLE_MS + " ms (CHANGE_MESSAGE_INVISIBLETIME); it came back after " + gap + " ms");

        // 5. consumer offsets of the group cover every message
        AtomicReference<Object> last = new AtomicReference<>();
        boolean settled = Clients.await(15_000, () -> {
            try {
                ConsumeStats cs = admin.examineConsumeStats(group);
                last.set(cs.getOffsetTable());
                long queues = 0;
                long broker = 0;
                long consumer = 0;
                for (Map.Entry<MessageQueue, OffsetWrapper> e : cs.getOffsetTable().entrySet()) {
                    if (e.getKey().getTopic().equals(topic)) {
                        queues++;
                        broker += e.getValue().getBrokerOffset();
                        consumer += e.getValue().getConsumerOffset();
                    }
                }
                return queues == QUEUES && broker == N && consumer == N && cs.computeTotalDiff() == 0;
            } catch (Exception e) {
                last.set(e);
                return false;
            }
        });
        if (!settled) {
            // what the broker itself answers (no route lookups) and which of the test's topics exist,
            // so that a failure says whether the broker or the name server disagrees
            Object direct;
            try {
                direct = admin.examineConsumeStats(masters.iterator().next(), group, null, 5_000).getOffsetTable().keySet();
            } catch (Exception e) {
                direct = e;
            }
            Object topics;
            try {
                topics = admin.fetchAllTopicList().getTopicList().stream().filter(t -> t.contains(uid)).toList();
            } catch (Exception e) {
                topics = e;
            }
            assertTrue(false, "examineConsumeStats(" + group + ") must show the " + QUEUES + " queues of " + topic
                + " with " + N + " messages, all consumed (total diff 0); last: " + last.get() + "; the broker's own "
                + "answer: " + direct + "; topics named with " + uid + " at the name server: " + topics
                + "; the client's subscriptions: " + rebalance.getSubscriptionInner().keySet());
        }
        ConsumeStats cs = admin.examineConsumeStats(group);
        // Apache lists the topic, the group's %RETRY% topic and the POP retry topic %RETRY%<group>_<topic>
        // (where the refused message went back through); only the topic's queues are asserted here
        Map<String, String> offsets = new TreeMap<>();
        for (Map.Entry<MessageQueue, OffsetWrapper> e : cs.getOffsetTable().entrySet()) {
            MessageQueue q = e.getKey();
            OffsetWrapper w = e.getValue();
            offsets.merge(q.getTopic(), q.getQueueId() + ":" + w.getConsumerOffset() + "/" + w.getBrokerOffset(),
                (a, b) -> a + " " + b);
            if (q.getTopic().equals(topic)) {
                assertEquals(w.getBrokerOffset(), w.getConsumerOffset(), "consumer offset of " + q);
            }
        }

        ConsumerConnection cc = admin.examineConsumerConnectionInfo(group);
        Set<String> ids = new HashSet<>();
        for (Connection conn : cc.getConnectionSet()) {
            ids.add(conn.getClientId());
        }
        assertEquals(Set.of(Clients.clientId(c)), ids, "the connections of " + group);
        assertTrue(cc.getSubscriptionTable().containsKey(topic), "subscriptions: " + cc.getSubscriptionTable());
        assertEquals("*", cc.getSubscriptionTable().get(topic).getSubString(), "subscription expression");
        assertEquals(ConsumeType.CONSUME_PASSIVELY, cc.getConsumeType(), "consume type of a push consumer");
        assertEquals(MessageModel.CLUSTERING, cc.getMessageModel(), "message model");

        long firstDelivery = deliveries.stream().mapToLong(Delivery::atMillis).min().orElse(0);
        System.out.println("POP FIGURES: assignment " + (assignedAt - t0) + " ms after the start (" + assigned
            + "; " + retryTopic + ": " + retryAssigned.size() + " PULL queues), " + N + " sent in "
            + (sentDone - sentAt) + " ms, first delivery " + (firstDelivery - sentAt) + " ms and all first deliveries "
            + (firstAllAt - sentAt) + " ms after the first send, redelivery of the refused message after " + gap
            + " ms (all in " + (allAt - sentAt) + " ms), consume stats (queue:consumer/broker offset) " + offsets
            + ", test " + (System.currentTimeMillis() - t0) + " ms");
    }

    // ------------------------------------------------------------------ helpers

    private String body(int i) {
        return "pop-" + uid + "-" + i;
    }

    private String key(int i) {
        return "PopKey_" + uid + "_" + i;
    }

    private static Set<String> distinctBodies(ConcurrentLinkedQueue<Delivery> ds) {
        Set<String> s = new HashSet<>();
        for (Delivery d : ds) {
            s.add(new String(d.msg().getBody(), StandardCharsets.UTF_8));
        }
        return s;
    }

    private static long count(ConcurrentLinkedQueue<Delivery> ds, String body) {
        return ds.stream().filter(d -> body.equals(new String(d.msg().getBody(), StandardCharsets.UTF_8))).count();
    }

    private static long lastAt(ConcurrentLinkedQueue<Delivery> ds) {
        return ds.stream().mapToLong(Delivery::atMillis).max().orElse(0);
    }

    private static String describe(List<Delivery> ds) {
        StringBuilder b = new StringBuilder();
        for (Delivery d : ds) {
            b.append("[at ").append(d.atMillis()).append(", reconsumeTimes ").append(d.msg().getReconsumeTimes())
                .append(", queue ").append(d.msg().getQueueId()).append('@').append(d.msg().getQueueOffset())
                .append(", POP_CK ").append(d.msg().getProperty(MessageConst.PROPERTY_POP_CK)).append("] ");
        }
        return b.toString();
    }

    /**
     * Apache 5.4's priority messages (RIP-80): on a topic whose {@code message.type} is PRIORITY a
     * message's priority is its queue (at most the last), and POP hands out the highest queue
     * first ({@code priorityOrderAsc}, default true), so one pop of everything comes back highest
     * priority first.
     */
    @Test
    void priorityTopicHandsOutTheHighestPriorityFirst() throws Exception {
        String topic = "PriorityTopic_" + uid;
        String group = "PriorityCG_" + uid;
        admin.createTopic(CLUSTER, topic, QUEUES, Map.of("+message.type", "PRIORITY"));
        awaitRoute(topic);
        Set<String> masters = CommandUtil.fetchMasterAddrByClusterName(admin, CLUSTER);
        for (String addr : masters) {
            SubscriptionGroupConfig cfg = new SubscriptionGroupConfig();
            cfg.setGroupName(group);
            admin.createAndUpdateSubscriptionGroupConfig(addr, cfg);
            admin.setMessageRequestMode(addr, topic, group, MessageRequestMode.POP, 0, 5_000);
        }

        DefaultMQProducer p = clients.producer("PriorityPG_" + uid);
        int[] priorities = {0, 1, 2, 3, 9, 0, 2, 1, 3};
        for (int i = 0; i < priorities.length; i++) {
            Message m = new Message(topic, "TagP", ("priority-" + i).getBytes(StandardCharsets.UTF_8));
            m.setPriority(priorities[i]);
            SendResult r = Clients.sendWhenRouted(p, m, null);
            assertEquals(SendStatus.SEND_OK, r.getSendStatus(), "send " + i + ": " + r);
            assertEquals(Math.min(priorities[i], QUEUES - 1), r.getMessageQueue().getQueueId(),
                "the priority " + priorities[i] + " picks the queue: " + r);
        }

        ConcurrentLinkedQueue<Integer> order = new ConcurrentLinkedQueue<>();
        DefaultMQPushConsumer c = clients.pushConsumer(group, topic, (msgs, ctx) -> {
            msgs.forEach(m -> order.add(m.getQueueId()));
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.setClientRebalance(false);
        c.setPopBatchNums(32);
        c.setConsumeThreadMin(1);
        c.setConsumeThreadMax(1);
        c.setConsumeMessageBatchMaxSize(1);
        clients.start(c);
        assertTrue(Clients.await(30_000, () -> order.size() >= priorities.length),
            "within 30 s only " + order + " of " + priorities.length + " messages were consumed");
        List<Integer> got = new ArrayList<>(order);
        List<Integer> sorted = new ArrayList<>(got);
        sorted.sort((a, b) -> b - a);
        assertEquals(sorted, got, "POP of a priority topic hands out the highest queue first");
    }

    private static void awaitRoute(String topic) throws InterruptedException {
        AtomicReference<Exception> lastErr = new AtomicReference<>();
        boolean routed = Clients.await(10_000, () -> {
            try {
                return !admin.examineTopicRouteInfo(topic).getQueueDatas().isEmpty();
            } catch (Exception e) {
                lastErr.set(e);
                return false;
            }
        });
        assertTrue(routed, "no route for " + topic + " within 10 s of admin.createTopic: " + lastErr.get());
    }
}
