package io.ferromq.interop;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;
import java.util.regex.Pattern;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.impl.consumer.ProcessQueue;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendCallback;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageClientExt;
import org.apache.rocketmq.common.message.MessageClientIDSetter;
import org.apache.rocketmq.common.message.MessageDecoder;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageId;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.common.protocol.heartbeat.MessageModel;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Apache RocketMQ Java client (remoting, 4.9.x) against a FerroMQ standalone process.
 * Every test gets its own broker process, topic, groups and client instance names.
 */
@Timeout(value = 100, unit = TimeUnit.SECONDS)
class JavaClientInteropTest {

    /** Topics are auto-created with this many queues. */
    static final int QUEUES = 4;
    static final long RECEIVE_TIMEOUT_MS = 40_000;
    static final Pattern HEX32 = Pattern.compile("[0-9A-Fa-f]{32}");

    @RegisterExtension
    final BrokerExtension ext = new BrokerExtension();

    private final String uid = UUID.randomUUID().toString().replace("-", "").substring(0, 12);
    private final List<Runnable> shutdowns = new ArrayList<>();

    @AfterEach
    void shutdownClients() {
        // consumers/producers are shut down (UNREGISTER_CLIENT etc.) while the broker still runs
        List<Runnable> rev = new ArrayList<>(shutdowns);
        Collections.reverse(rev);
        for (Runnable r : rev) {
            try {
                r.run();
            } catch (RuntimeException e) {
                System.err.println("client shutdown failed: " + e);
            }
        }
        shutdowns.clear();
    }

    // ------------------------------------------------------------------ tests

    @Test
    void syncSendThenPushConsume() throws Exception {
        FerroMQBroker broker = ext.broker();
        String topic = "JavaSync_" + uid;
        DefaultMQProducer producer = startProducer("sync");

        int n = 8;
        List<Message> sent = new ArrayList<>();
        List<SendResult> results = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            Message m = new Message(topic, "TagA", "key-" + i + "-" + uid,
                ("sync-body-" + i + "-" + uid).getBytes(StandardCharsets.UTF_8));
            m.putUserProperty("seq", Integer.toString(i));
            SendResult r = producer.send(m);
            sent.add(m);
            results.add(r);
        }

        Map<Integer, List<Long>> offsetsByQueue = new TreeMap<>();
        Set<String> offsetMsgIds = new HashSet<>();
        long lastCommitLogOffset = -1;
        for (int i = 0; i < n; i++) {
            SendResult r = results.get(i);
            String ctx = "send #" + i + ": " + r;
            assertEquals(SendStatus.SEND_OK, r.getSendStatus(), ctx);
            assertNotNull(r.getMsgId(), "msgId missing, " + ctx);
            assertEquals(MessageClientIDSetter.getUniqID(sent.get(i)), r.getMsgId(),
                "SendResult.msgId must be the client-generated UNIQ_KEY, " + ctx);
            MessageId decoded = checkOffsetMsgId(broker, r.getOffsetMsgId(), ctx);
            assertTrue(offsetMsgIds.add(r.getOffsetMsgId()), "duplicate offsetMsgId, " + ctx);
            assertTrue(decoded.getOffset() > lastCommitLogOffset,
                "commit-log offsets in offsetMsgId must increase with each sync send, " + ctx);
            lastCommitLogOffset = decoded.getOffset();
            assertNotNull(r.getMessageQueue(), ctx);
            assertEquals(topic, r.getMessageQueue().getTopic(), ctx);
            assertFalse(r.getMessageQueue().getBrokerName() == null
                || r.getMessageQueue().getBrokerName().isEmpty(), "brokerName missing, " + ctx);
            int q = r.getMessageQueue().getQueueId();
            assertTrue(q >= 0 && q < QUEUES, "queueId out of range, " + ctx);
            offsetsByQueue.computeIfAbsent(q, k -> new ArrayList<>()).add(r.getQueueOffset());
        }
        // fresh topic: per queue, the sync sends must get 0,1,2,... in send order
        for (Map.Entry<Integer, List<Long>> e : offsetsByQueue.entrySet()) {
            assertEquals(range(0, e.getValue().size()), e.getValue(),
                "queue offsets of queue " + e.getKey() + " (all: " + offsetsByQueue + ")");
        }
        assertTrue(offsetsByQueue.size() > 1,
            "8 sync sends should be spread over several queues, got " + offsetsByQueue);

        Received rx = startPushConsumer("cg_sync_" + uid, "sync-c", topic, "*");
        List<MessageExt> got = awaitAll(rx, sent);

        Map<String, MessageExt> byId = indexByMsgId(got);
        for (int i = 0; i < n; i++) {
            Message m = sent.get(i);
            SendResult r = results.get(i);
            MessageExt x = byId.get(r.getMsgId());
            String ctx = "message #" + i + " (" + r.getMsgId() + ")";
            assertEquals(new String(m.getBody(), StandardCharsets.UTF_8), Received.body(x), ctx);
            assertText("TagA", x.getTags(), "tag, " + ctx);
            assertText(m.getKeys(), x.getKeys(), "keys, " + ctx);
            assertText(Integer.toString(i), x.getUserProperty("seq"), "user property, " + ctx);
            assertEquals(topic, x.getTopic(), ctx);
            assertEquals(r.getMessageQueue().getQueueId(), x.getQueueId(), "queueId, " + ctx);
            assertEquals(r.getQueueOffset(), x.getQueueOffset(), "queueOffset, " + ctx);
            assertTrue(x instanceof MessageClientExt, "consumer should see MessageClientExt");
            assertEquals(r.getOffsetMsgId(), ((MessageClientExt) x).getOffsetMsgId(),
                "offsetMsgId seen by consumer must equal the one in SendResult, " + ctx);
            assertEquals(0, x.getReconsumeTimes(), ctx);
            assertTrue(x.getBornTimestamp() > 0 && x.getStoreTimestamp() > 0, "timestamps, " + ctx);
        }
    }

    @Test
    void asyncSendWithCallbackThenConsume() throws Exception {
        FerroMQBroker broker = ext.broker();
        String topic = "JavaAsync_" + uid;
        DefaultMQProducer producer = startProducer("async");

        int n = 16;
        List<Message> sent = new ArrayList<>();
        CountDownLatch done = new CountDownLatch(n);
        Map<Integer, SendResult> ok = new ConcurrentHashMap<>();
        Map<Integer, Throwable> failed = new ConcurrentHashMap<>();
        for (int i = 0; i < n; i++) {
            Message m = new Message(topic, "TagAsync", "akey-" + i + "-" + uid,
                ("async-body-" + i + "-" + uid).getBytes(StandardCharsets.UTF_8));
            sent.add(m);
            final int idx = i;
            producer.send(m, new SendCallback() {
                @Override
                public void onSuccess(SendResult sendResult) {
                    ok.put(idx, sendResult);
                    done.countDown();
                }

                @Override
                public void onException(Throwable e) {
                    failed.put(idx, e);
                    done.countDown();
                }
            });
        }
        assertTrue(done.await(30, TimeUnit.SECONDS),
            "not all SendCallbacks fired within 30 s: ok=" + ok.keySet() + " failed=" + failed.keySet());
        if (!failed.isEmpty()) {
            Map.Entry<Integer, Throwable> first = failed.entrySet().iterator().next();
            throw new AssertionError(failed.size() + " async sends failed; first: #" + first.getKey(),
                first.getValue());
        }
        assertEquals(n, ok.size());
        Set<String> offsetMsgIds = new HashSet<>();
        Map<Integer, Set<Long>> offsetsByQueue = new TreeMap<>();
        for (int i = 0; i < n; i++) {
            SendResult r = ok.get(i);
            String ctx = "async send #" + i + ": " + r;
            assertEquals(SendStatus.SEND_OK, r.getSendStatus(), ctx);
            assertEquals(MessageClientIDSetter.getUniqID(sent.get(i)), r.getMsgId(), ctx);
            checkOffsetMsgId(broker, r.getOffsetMsgId(), ctx);
            assertTrue(offsetMsgIds.add(r.getOffsetMsgId()), "duplicate offsetMsgId, " + ctx);
            int q = r.getMessageQueue().getQueueId();
            assertTrue(q >= 0 && q < QUEUES, ctx);
            assertTrue(offsetsByQueue.computeIfAbsent(q, k -> new TreeSet<>()).add(r.getQueueOffset()),
                "duplicate queue offset, " + ctx);
        }
        // fresh topic: each queue's offsets must be exactly {0..k-1} (order may vary for async)
        for (Map.Entry<Integer, Set<Long>> e : offsetsByQueue.entrySet()) {
            assertEquals(range(0, e.getValue().size()), new ArrayList<>(e.getValue()),
                "queue offsets of queue " + e.getKey());
        }

        Received rx = startPushConsumer("cg_async_" + uid, "async-c", topic, "*");
        List<MessageExt> got = awaitAll(rx, sent);
        Map<String, MessageExt> byId = indexByMsgId(got);
        for (int i = 0; i < n; i++) {
            SendResult r = ok.get(i);
            MessageExt x = byId.get(r.getMsgId());
            String ctx = "async message #" + i;
            assertEquals(new String(sent.get(i).getBody(), StandardCharsets.UTF_8), Received.body(x), ctx);
            assertText("TagAsync", x.getTags(), "tag, " + ctx);
            assertText(sent.get(i).getKeys(), x.getKeys(), "keys, " + ctx);
            assertEquals(r.getMessageQueue().getQueueId(), x.getQueueId(), ctx);
            assertEquals(r.getQueueOffset(), x.getQueueOffset(), ctx);
        }
    }

    @Test
    void onewaySendThenConsume() throws Exception {
        String topic = "JavaOneway_" + uid;
        DefaultMQProducer producer = startProducer("oneway");

        int n = 8;
        List<Message> sent = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            Message m = new Message(topic, "TagOneway", "okey-" + i + "-" + uid,
                ("oneway-body-" + i + "-" + uid).getBytes(StandardCharsets.UTF_8));
            producer.sendOneway(m);
            sent.add(m);
            assertNotNull(MessageClientIDSetter.getUniqID(m), "client must have set UNIQ_KEY");
        }

        Received rx = startPushConsumer("cg_oneway_" + uid, "oneway-c", topic, "*");
        List<MessageExt> got = awaitAll(rx, sent);
        Map<String, MessageExt> byId = indexByMsgId(got);
        for (int i = 0; i < n; i++) {
            Message m = sent.get(i);
            MessageExt x = byId.get(MessageClientIDSetter.getUniqID(m));
            String ctx = "oneway message #" + i;
            assertEquals(new String(m.getBody(), StandardCharsets.UTF_8), Received.body(x), ctx);
            assertText("TagOneway", x.getTags(), "tag, " + ctx);
            assertText(m.getKeys(), x.getKeys(), "keys, " + ctx);
        }
        assertDenseOffsetsPerQueue(got);
    }

    @Test
    void batchSendThenConsume() throws Exception {
        FerroMQBroker broker = ext.broker();
        String topic = "JavaBatch_" + uid;
        DefaultMQProducer producer = startProducer("batch");

        int n = 10;
        List<Message> batch = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            Message m = new Message(topic, "TagBatch", "bkey-" + i + "-" + uid,
                ("batch-body-" + i + "-" + uid).getBytes(StandardCharsets.UTF_8));
            m.putUserProperty("seq", Integer.toString(i));
            batch.add(m);
        }
        SendResult r = producer.send(batch);
        String ctx = "batch SendResult " + r;
        assertEquals(SendStatus.SEND_OK, r.getSendStatus(), ctx);
        assertNotNull(r.getMsgId(), ctx);
        List<String> uniqIds = new ArrayList<>();
        for (Message m : batch) {
            uniqIds.add(MessageClientIDSetter.getUniqID(m));
        }
        assertEquals(String.join(",", uniqIds), r.getMsgId(),
            "batch msgId = comma-joined UNIQ_KEYs, " + ctx);
        assertNotNull(r.getOffsetMsgId(), "offsetMsgId missing, " + ctx);
        String[] offIds = r.getOffsetMsgId().split(",");
        assertEquals(n, offIds.length,
            "broker must return one offset msgId per batched message (comma-separated), " + ctx);
        long last = -1;
        for (String id : offIds) {
            MessageId d = checkOffsetMsgId(broker, id, ctx);
            assertTrue(d.getOffset() > last, "commit-log offsets within a batch must increase, " + ctx);
            last = d.getOffset();
        }
        int q = r.getMessageQueue().getQueueId();
        assertTrue(q >= 0 && q < QUEUES, ctx);
        assertEquals(0L, r.getQueueOffset(), "first batch into a fresh topic starts at offset 0, " + ctx);

        Received rx = startPushConsumer("cg_batch_" + uid, "batch-c", topic, "*");
        List<MessageExt> got = awaitAll(rx, batch);
        Map<String, MessageExt> byId = indexByMsgId(got);
        for (int i = 0; i < n; i++) {
            Message m = batch.get(i);
            MessageExt x = byId.get(uniqIds.get(i));
            String mctx = "batched message #" + i;
            assertEquals(new String(m.getBody(), StandardCharsets.UTF_8), Received.body(x), mctx);
            assertText("TagBatch", x.getTags(), "tag, " + mctx);
            assertText(m.getKeys(), x.getKeys(), "keys, " + mctx);
            assertText(Integer.toString(i), x.getUserProperty("seq"), "user property, " + mctx);
            assertEquals(q, x.getQueueId(), "all batched messages go to the queue of the SendResult, " + mctx);
            assertEquals(r.getQueueOffset() + i, x.getQueueOffset(), "consecutive queue offsets, " + mctx);
            assertEquals(offIds[i], ((MessageClientExt) x).getOffsetMsgId(), "offsetMsgId, " + mctx);
        }
    }

    @Test
    void twoConsumersInOneGroupSplitQueues() throws Exception {
        String topic = "JavaShared_" + uid;
        String group = "cg_shared_" + uid;
        DefaultMQProducer producer = startProducer("shared");

        // create the topic (auto-create) before the consumers look up its route
        Message warm = new Message(topic, "warmup", ("warmup-" + uid).getBytes(StandardCharsets.UTF_8));
        SendResult wr = producer.send(warm);
        assertEquals(SendStatus.SEND_OK, wr.getSendStatus(), "warm-up send: " + wr);
        String warmId = wr.getMsgId();

        Received a = startPushConsumer(group, "shared-a", topic, "*");
        Received b = startPushConsumer(group, "shared-b", topic, "*");

        // wait until the two consumers own disjoint halves covering all 4 queues
        Supplier<String> assignment = () -> "A=" + ownedQueues(a, topic) + " B=" + ownedQueues(b, topic);
        awaitCondition(45_000, () -> {
            Set<Integer> qa = ownedQueues(a, topic);
            Set<Integer> qb = ownedQueues(b, topic);
            Set<Integer> union = new TreeSet<>(qa);
            union.addAll(qb);
            return qa.size() == QUEUES / 2 && qb.size() == QUEUES / 2 && union.size() == QUEUES;
        }, () -> "rebalance never split the " + QUEUES + " queues between the two consumers: "
            + assignment.get());
        Thread.sleep(500);
        Set<Integer> qa = ownedQueues(a, topic);
        Set<Integer> qb = ownedQueues(b, topic);
        assertEquals(QUEUES / 2, qa.size(), "assignment not stable: " + assignment.get());
        assertEquals(QUEUES / 2, qb.size(), "assignment not stable: " + assignment.get());

        int n = 40;
        List<Message> sent = new ArrayList<>();
        Map<String, Integer> queueOf = new HashMap<>();
        for (int i = 0; i < n; i++) {
            Message m = new Message(topic, "TagShared", "skey-" + i + "-" + uid,
                ("shared-body-" + i + "-" + uid).getBytes(StandardCharsets.UTF_8));
            SendResult r = producer.send(m);
            assertEquals(SendStatus.SEND_OK, r.getSendStatus(), "send #" + i + ": " + r);
            sent.add(m);
            queueOf.put(r.getMsgId(), r.getMessageQueue().getQueueId());
        }
        assertEquals(QUEUES, new HashSet<>(queueOf.values()).size(),
            "40 sends should have used all queues: " + queueOf.values());

        Set<String> expected = new HashSet<>(queueOf.keySet());
        awaitCondition(RECEIVE_TIMEOUT_MS, () -> {
            Set<String> seen = new HashSet<>();
            for (MessageExt m : a.all()) seen.add(m.getMsgId());
            for (MessageExt m : b.all()) seen.add(m.getMsgId());
            return seen.containsAll(expected);
        }, () -> "the two consumers did not receive all " + n + " messages; assignment " + assignment.get()
            + "\nA got:" + Received.describe(a.all()) + "\nB got:" + Received.describe(b.all()));
        Thread.sleep(500); // let any stray duplicate arrive before checking for it

        List<MessageExt> gotA = a.matching(m -> !warmId.equals(m.getMsgId()));
        List<MessageExt> gotB = b.matching(m -> !warmId.equals(m.getMsgId()));
        String detail = "assignment " + assignment.get() + "\nA got:" + Received.describe(gotA)
            + "\nB got:" + Received.describe(gotB);
        assertFalse(gotA.isEmpty(), "consumer A received nothing; " + detail);
        assertFalse(gotB.isEmpty(), "consumer B received nothing; " + detail);
        for (MessageExt m : gotA) {
            assertTrue(qa.contains(m.getQueueId()), "A got a message from a queue it does not own; " + detail);
        }
        for (MessageExt m : gotB) {
            assertTrue(qb.contains(m.getQueueId()), "B got a message from a queue it does not own; " + detail);
        }
        List<MessageExt> union = new ArrayList<>(gotA);
        union.addAll(gotB);
        Map<String, MessageExt> byId = indexByMsgId(union); // also asserts: no duplicates
        assertEquals(expected, byId.keySet(), "union of A and B must be exactly the sent messages; " + detail);
        for (Message m : sent) {
            MessageExt x = byId.get(MessageClientIDSetter.getUniqID(m));
            assertEquals(new String(m.getBody(), StandardCharsets.UTF_8), Received.body(x));
            assertEquals(queueOf.get(x.getMsgId()).intValue(), x.getQueueId());
        }
    }

    // ------------------------------------------------------------------ helpers

    private DefaultMQProducer startProducer(String what) throws Exception {
        DefaultMQProducer p = new DefaultMQProducer("pg_" + what + "_" + uid);
        p.setNamesrvAddr(ext.broker().namesrvAddr());
        p.setInstanceName("it-" + what + "-p-" + uid);
        p.setVipChannelEnabled(false);
        // surface broker errors instead of hiding them behind client retries
        p.setRetryTimesWhenSendFailed(0);
        p.setRetryTimesWhenSendAsyncFailed(0);
        p.setSendMsgTimeout(5000);
        p.start();
        shutdowns.add(p::shutdown);
        return p;
    }

    private Received startPushConsumer(String group, String instance, String topic, String subExpr)
        throws Exception {
        DefaultMQPushConsumer c = new DefaultMQPushConsumer(group);
        c.setNamesrvAddr(ext.broker().namesrvAddr());
        c.setInstanceName("it-" + instance + "-" + uid);
        c.setVipChannelEnabled(false);
        c.setMessageModel(MessageModel.CLUSTERING);
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.setConsumeThreadMax(4);
        c.setConsumeThreadMin(2);
        c.subscribe(topic, subExpr);
        Received rx = new Received(instance, c);
        c.registerMessageListener(rx.listener());
        c.start();
        shutdowns.add(c::shutdown);
        return rx;
    }

    /** Waits until every sent message (by UNIQ_KEY) was delivered; asserts nothing else / no duplicates. */
    private static List<MessageExt> awaitAll(Received rx, List<Message> sent) throws InterruptedException {
        Set<String> expected = new HashSet<>();
        for (Message m : sent) {
            expected.add(MessageClientIDSetter.getUniqID(m));
        }
        awaitCondition(RECEIVE_TIMEOUT_MS, () -> {
            Set<String> seen = new HashSet<>();
            for (MessageExt m : rx.all()) seen.add(m.getMsgId());
            return seen.containsAll(expected);
        }, () -> {
            Set<String> missing = new TreeSet<>(expected);
            for (MessageExt m : rx.all()) missing.remove(m.getMsgId());
            return "consumer " + rx.name + " did not receive " + missing.size() + " of " + sent.size()
                + " messages within " + RECEIVE_TIMEOUT_MS + " ms; missing msgIds " + missing
                + "\nreceived:" + Received.describe(rx.all());
        });
        Thread.sleep(300); // let any stray duplicate arrive before checking for it
        List<MessageExt> got = rx.all();
        Map<String, MessageExt> byId = indexByMsgId(got);
        assertEquals(expected, byId.keySet(), "unexpected extra messages:" + Received.describe(got));
        return got;
    }

    private static Map<String, MessageExt> indexByMsgId(List<MessageExt> got) {
        Map<String, MessageExt> byId = new LinkedHashMap<>();
        for (MessageExt m : got) {
            MessageExt prev = byId.put(m.getMsgId(), m);
            if (prev != null) {
                fail("message delivered twice: " + m.getMsgId() + "\nall deliveries:" + Received.describe(got));
            }
        }
        return byId;
    }

    private static void assertDenseOffsetsPerQueue(List<MessageExt> got) {
        Map<Integer, List<Long>> byQueue = new TreeMap<>();
        for (MessageExt m : got) {
            assertTrue(m.getQueueId() >= 0 && m.getQueueId() < QUEUES, "queueId " + m.getQueueId());
            byQueue.computeIfAbsent(m.getQueueId(), k -> new ArrayList<>()).add(m.getQueueOffset());
        }
        for (Map.Entry<Integer, List<Long>> e : byQueue.entrySet()) {
            List<Long> offs = new ArrayList<>(e.getValue());
            Collections.sort(offs);
            assertEquals(range(0, offs.size()), offs,
                "queue " + e.getKey() + " offsets must be 0..n-1 on a fresh topic:" + Received.describe(got));
        }
    }

    /** offsetMsgId: 32 upper-case hex chars encoding the broker's reachable store address + commit-log offset. */
    private static MessageId checkOffsetMsgId(FerroMQBroker broker, String offsetMsgId, String ctx) {
        assertNotNull(offsetMsgId, "offsetMsgId missing, " + ctx);
        assertTrue(HEX32.matcher(offsetMsgId).matches(),
            "offsetMsgId must be 32 hex chars (IPv4 store host), got '" + offsetMsgId + "', " + ctx);
        MessageId id;
        try {
            id = MessageDecoder.decodeMessageId(offsetMsgId);
        } catch (Exception e) {
            throw new AssertionError("offsetMsgId not decodable: " + offsetMsgId + ", " + ctx, e);
        }
        InetSocketAddress addr = (InetSocketAddress) id.getAddress();
        assertEquals("127.0.0.1:" + broker.brokerPort(),
            addr.getAddress().getHostAddress() + ":" + addr.getPort(),
            "store host in offsetMsgId must be the broker's address, " + ctx);
        assertTrue(id.getOffset() >= 0, "commit-log offset in offsetMsgId, " + ctx);
        return id;
    }

    private static Set<Integer> ownedQueues(Received rx, String topic) {
        Set<Integer> out = new TreeSet<>();
        for (Map.Entry<MessageQueue, ProcessQueue> e : rx.consumer.getDefaultMQPushConsumerImpl()
            .getRebalanceImpl().getProcessQueueTable().entrySet()) {
            if (topic.equals(e.getKey().getTopic()) && !e.getValue().isDropped()) {
                out.add(e.getKey().getQueueId());
            }
        }
        return out;
    }

    /** assertEquals for strings taken from message properties; control characters are made visible. */
    private static void assertText(String expected, String actual, String ctx) {
        assertEquals(visible(expected), visible(actual), ctx);
    }

    static String visible(String s) {
        if (s == null) {
            return null;
        }
        StringBuilder sb = new StringBuilder();
        for (char c : s.toCharArray()) {
            if (c < 0x20) {
                sb.append(String.format("\\u%04x", (int) c));
            } else {
                sb.append(c);
            }
        }
        return sb.toString();
    }

    private static List<Long> range(long from, int count) {
        List<Long> out = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            out.add(from + i);
        }
        return out;
    }

    /** Polls every 100 ms; bounded by timeoutMs. */
    private static void awaitCondition(long timeoutMs, BooleanSupplier cond, Supplier<String> onTimeout)
        throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        int maxIterations = (int) (timeoutMs / 100) + 1;
        for (int i = 0; i < maxIterations; i++) {
            if (cond.getAsBoolean()) {
                return;
            }
            if (System.nanoTime() > deadline) {
                break;
            }
            Thread.sleep(100);
        }
        if (cond.getAsBoolean()) {
            return;
        }
        fail(onTimeout.get());
    }
}
