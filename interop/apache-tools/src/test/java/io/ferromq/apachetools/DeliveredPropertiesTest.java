package io.ferromq.apachetools;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.exception.MQClientException;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.LocalTransactionState;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.client.producer.TransactionListener;
import org.apache.rocketmq.client.producer.TransactionMQProducer;
import org.apache.rocketmq.client.producer.TransactionSendResult;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageClientExt;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.sysflag.MessageSysFlag;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Properties Apache's broker leaves on delivered messages, seen through the 5.5.0 Java client
 * (DefaultMQProducer / TransactionMQProducer and DefaultMQPushConsumer). Each test has its own
 * topic (made with {@code admin.createTopic}: autoCreateTopicEnable=false) and consumer group.
 */
@Timeout(value = 75, unit = TimeUnit.SECONDS)
class DeliveredPropertiesTest {

    @RegisterExtension
    static final FerroMQExtension FERRO = new FerroMQExtension();

    static final long WAIT_MS = 30_000;

    static Clients shared;
    static DefaultMQAdminExt admin;
    Clients clients;
    final String uid = Clients.uid();

    /** A delivery and when it arrived. */
    record Delivery(MessageExt msg, long atMillis) {
    }

    @BeforeAll
    static void startAdmin() throws Exception {
        shared = new Clients(FERRO.server().namesrvAddr());
        admin = shared.admin();
    }

    @AfterAll
    static void stopAdmin() {
        if (shared != null) {
            shared.close();
        }
    }

    @BeforeEach
    void newClients() {
        clients = new Clients(FERRO.server().namesrvAddr());
    }

    @AfterEach
    void closeClients() {
        clients.close();
    }

    @Test
    void delayLevelMessageArrivesWithDelayAndRealTopicProperties() throws Exception {
        String topic = createTopic("DpDelay_");
        BlockingQueue<Delivery> got = consume("DpDelayG_", topic, null);
        DefaultMQProducer p = clients.producer("DpDelayP_" + uid);
        String body = "delay-level-1-" + uid;
        Message m = new Message(topic, "TagD", body.getBytes(StandardCharsets.UTF_8));
        m.setDelayTimeLevel(1);
        long sentAt = System.currentTimeMillis();
        SendResult r = Clients.sendWhenRouted(p, m, null);
        assertEquals(SendStatus.SEND_OK, r.getSendStatus(), "send: " + r);

        Delivery d = next(got, body, "the delay level 1 message");
        MessageExt x = d.msg();
        assertTrue(d.atMillis() - sentAt >= 700, "delay level 1 (1 s) must hold the message back; it came after "
            + (d.atMillis() - sentAt) + " ms");
        assertEquals(topic, x.getTopic(), "delivered on its own topic; " + x.getProperties());
        assertEquals(r.getMessageQueue().getQueueId(), x.getQueueId(), "delivered in the queue it was sent to");
        assertEquals(1, x.getDelayTimeLevel(), "DELAY property must still say 1; " + x.getProperties());
        assertEquals(topic, x.getProperty("REAL_TOPIC"), "REAL_TOPIC; " + x.getProperties());
        assertEquals(String.valueOf(r.getMessageQueue().getQueueId()), x.getProperty("REAL_QID"),
            "REAL_QID; " + x.getProperties());
        assertEquals(r.getMsgId(), x.getMsgId(), "UNIQ_KEY kept");
    }

    @Test
    void retriedMessageArrivesWithOriginIdRetryTopicAndDelay() throws Exception {
        String topic = createTopic("DpRetry_");
        AtomicReference<Delivery> first = new AtomicReference<>();
        String group = "DpRetryG_" + uid;
        BlockingQueue<Delivery> got = consume("DpRetryG_", topic, first);
        DefaultMQProducer p = clients.producer("DpRetryP_" + uid);
        String body = "reconsume-later-once-" + uid;
        SendResult r = Clients.sendWhenRouted(p, new Message(topic, "TagR", "DpRetryKey_" + uid,
            body.getBytes(StandardCharsets.UTF_8)), null);
        assertEquals(SendStatus.SEND_OK, r.getSendStatus(), "send: " + r);

        Delivery second = next(got, body, "the redelivery after RECONSUME_LATER (retry delay level 3 = 10 s)");
        Delivery one = first.get();
        assertNotNull(one, "the first delivery was answered with RECONSUME_LATER");
        MessageExt x = second.msg();
        String firstOffsetId = ((MessageClientExt) one.msg()).getOffsetMsgId();

        assertEquals(1, x.getReconsumeTimes(), "reconsumeTimes of the redelivery; " + x.getProperties());
        assertEquals(topic, x.getTopic(), "the client shows the redelivery on the original topic; " + x.getProperties());
        assertEquals(body, new String(x.getBody(), StandardCharsets.UTF_8), "body");
        assertEquals(r.getMsgId(), x.getMsgId(), "UNIQ_KEY kept");
        assertEquals(firstOffsetId, x.getProperty("ORIGIN_MESSAGE_ID"),
            "ORIGIN_MESSAGE_ID = the first delivery's offsetMsgId; " + x.getProperties());
        assertEquals(topic, x.getProperty("RETRY_TOPIC"), "RETRY_TOPIC = the original topic; " + x.getProperties());
        assertEquals("%RETRY%" + group, x.getProperty("REAL_TOPIC"),
            "REAL_TOPIC = the group's retry topic (it came back through the delay queue); " + x.getProperties());
        assertNotNull(x.getProperty("REAL_QID"), "REAL_QID; " + x.getProperties());
        assertEquals("3", x.getProperty("DELAY"), "DELAY = 3 (sent back with level 3 + reconsumeTimes 0); "
            + x.getProperties());
        assertEquals("DpRetryKey_" + uid, x.getKeys(), "keys kept");
        long gap = second.atMillis() - one.atMillis();
        assertTrue(gap >= 8_000, "retry delay level 3 is 10 s; the redelivery came after " + gap + " ms");
    }

    /**
     * The 5.x client's {@code setDeliverTimeMs} puts TIMER_DELIVER_MS on the message; Apache's
     * timer holds it until then and delivers it with TIMER_DELIVER_MS, TIMER_OUT_MS (the delivery
     * time at the timer's 1 s precision), REAL_TOPIC and REAL_QID.
     */
    @Test
    void deliverTimeMessageIsHeldAndArrivesWithTimerProperties() throws Exception {
        String topic = createTopic("DpTimer_");
        BlockingQueue<Delivery> got = consume("DpTimerG_", topic, null);
        DefaultMQProducer p = clients.producer("DpTimerP_" + uid);
        String body = "deliver-in-2s-" + uid;
        Message m = new Message(topic, "TagT", body.getBytes(StandardCharsets.UTF_8));
        long deliverAt = System.currentTimeMillis() + 2_000;
        m.setDeliverTimeMs(deliverAt);
        assertEquals(String.valueOf(deliverAt), m.getProperty("TIMER_DELIVER_MS"),
            "the 5.x client puts the delivery time in TIMER_DELIVER_MS");
        SendResult r = Clients.sendWhenRouted(p, m, null);
        assertEquals(SendStatus.SEND_OK, r.getSendStatus(), "send: " + r);

        Delivery d = next(got, body, "the message with a delivery time");
        MessageExt x = d.msg();
        assertTrue(d.atMillis() >= deliverAt - 1_000, "delivered " + (deliverAt - d.atMillis())
            + " ms before its delivery time");
        assertEquals(topic, x.getTopic(), "delivered on its own topic; " + x.getProperties());
        assertEquals(r.getMessageQueue().getQueueId(), x.getQueueId(), "delivered in the queue it was sent to");
        assertEquals(String.valueOf(deliverAt), x.getProperty("TIMER_DELIVER_MS"),
            "TIMER_DELIVER_MS must still be there; " + x.getProperties());
        String timerOut = x.getProperty("TIMER_OUT_MS");
        assertNotNull(timerOut, "TIMER_OUT_MS; " + x.getProperties());
        long out = Long.parseLong(timerOut);
        assertTrue(out <= deliverAt && deliverAt - out < 1_000,
            "TIMER_OUT_MS = the delivery time at 1 s precision (" + deliverAt + "): " + out);
        assertEquals(topic, x.getProperty("REAL_TOPIC"), "REAL_TOPIC; " + x.getProperties());
        assertEquals(String.valueOf(r.getMessageQueue().getQueueId()), x.getProperty("REAL_QID"),
            "REAL_QID; " + x.getProperties());
        assertEquals(r.getMsgId(), x.getMsgId(), "UNIQ_KEY kept");
    }

    /**
     * __STARTDELIVERTIME (the delivery-time property of older and commercial clients) is an
     * ordinary user property to Apache's broker: it arrives unchanged.
     */
    @Test
    void startDeliverTimePropertyArrivesUnchanged() throws Exception {
        String topic = createTopic("DpStart_");
        BlockingQueue<Delivery> got = consume("DpStartG_", topic, null);
        DefaultMQProducer p = clients.producer("DpStartP_" + uid);
        String body = "start-deliver-time-" + uid;
        Message m = new Message(topic, "TagS", body.getBytes(StandardCharsets.UTF_8));
        String startAt = String.valueOf(System.currentTimeMillis() + 2_000);
        m.putUserProperty("__STARTDELIVERTIME", startAt);
        SendResult r = Clients.sendWhenRouted(p, m, null);
        assertEquals(SendStatus.SEND_OK, r.getSendStatus(), "send: " + r);

        MessageExt x = next(got, body, "the message with __STARTDELIVERTIME").msg();
        assertEquals(topic, x.getTopic(), "delivered on its own topic; " + x.getProperties());
        assertEquals(startAt, x.getProperty("__STARTDELIVERTIME"), "__STARTDELIVERTIME must arrive unchanged; "
            + x.getProperties());
        assertEquals(r.getMsgId(), x.getMsgId(), "UNIQ_KEY kept");
    }

    @Test
    void committedTransactionalMessageArrivesWithTranMsgAndProducerGroup() throws Exception {
        String topic = createTopic("DpTx_");
        BlockingQueue<Delivery> got = consume("DpTxG_", topic, null);
        String group = "DpTxP_" + uid;
        TransactionMQProducer tp = clients.configure(new TransactionMQProducer(group), group);
        tp.setTransactionListener(new TransactionListener() {
            @Override
            public LocalTransactionState executeLocalTransaction(Message msg, Object arg) {
                return LocalTransactionState.COMMIT_MESSAGE;
            }

            @Override
            public LocalTransactionState checkLocalTransaction(MessageExt msg) {
                return LocalTransactionState.COMMIT_MESSAGE;
            }
        });
        tp.start();
        clients.onClose(tp::shutdown);

        String body = "committed-tx-" + uid;
        Message m = new Message(topic, "TagX", body.getBytes(StandardCharsets.UTF_8));
        TransactionSendResult r = sendInTransaction(tp, m);
        assertEquals(SendStatus.SEND_OK, r.getSendStatus(), "half message send: " + r);
        assertEquals(LocalTransactionState.COMMIT_MESSAGE, r.getLocalTransactionState(), "local transaction state");

        MessageExt x = next(got, body, "the committed transactional message").msg();
        assertEquals(topic, x.getTopic(), "delivered on its own topic; " + x.getProperties());
        assertEquals("true", x.getProperty("TRAN_MSG"), "TRAN_MSG; " + x.getProperties());
        assertEquals(group, x.getProperty("PGROUP"), "PGROUP = the producer group; " + x.getProperties());
        assertEquals(r.getMsgId(), x.getProperty("__transactionId__"), "__transactionId__ = the UNIQ_KEY; "
            + x.getProperties());
        assertEquals(MessageSysFlag.TRANSACTION_COMMIT_TYPE, x.getSysFlag() & MessageSysFlag.TRANSACTION_ROLLBACK_TYPE,
            "the transaction bits of sysFlag say COMMIT (0x8): " + x.getSysFlag());
        assertEquals(r.getMsgId(), x.getMsgId(), "UNIQ_KEY kept");
    }

    // ------------------------------------------------------------------ helpers

    /**
     * RECALL_MESSAGE (370, Apache 5.3.1): the 5.x client's {@code recallMessage(topic, handle)}
     * with the recall handle a timer message's send returned withdraws it; a second message due
     * at the same time still arrives, and a handle that is not one is refused.
     */
    @Test
    void recalledTimerMessageIsNeverDelivered() throws Exception {
        String topic = createTopic("DpRecall_");
        BlockingQueue<Delivery> got = consume("DpRecallG_", topic, null);
        DefaultMQProducer p = clients.producer("DpRecallP_" + uid);
        long deliverAt = System.currentTimeMillis() + 3_000;
        Message recalled = new Message(topic, "TagR", ("recalled-" + uid).getBytes(StandardCharsets.UTF_8));
        recalled.setDeliverTimeMs(deliverAt);
        SendResult r = Clients.sendWhenRouted(p, recalled, null);
        assertEquals(SendStatus.SEND_OK, r.getSendStatus(), "send: " + r);
        assertNotNull(r.getRecallHandle(), "a timer message's send returns a recall handle: " + r);
        Message kept = new Message(topic, "TagR", ("kept-" + uid).getBytes(StandardCharsets.UTF_8));
        kept.setDeliverTimeMs(deliverAt);
        assertEquals(SendStatus.SEND_OK, Clients.sendWhenRouted(p, kept, null).getSendStatus());

        assertEquals(r.getMsgId(), p.recallMessage(topic, r.getRecallHandle()), "recall answers the message's id");
        Exception refused = null;
        try {
            p.recallMessage(topic, "not-a-handle");
        } catch (Exception e) {
            refused = e;
        }
        assertNotNull(refused, "a handle that is not one was accepted");

        Delivery d = next(got, "kept-" + uid, "the timer message that was not recalled");
        assertTrue(d.atMillis() >= deliverAt - 1_000, "delivered before its time");
        Thread.sleep(2_000);
        for (Delivery other : got) {
            String body = new String(other.msg().getBody(), StandardCharsets.UTF_8);
            assertTrue(!body.equals("recalled-" + uid), "the recalled message was delivered");
        }
    }

    private String createTopic(String prefix) throws Exception {
        String topic = prefix + uid;
        admin.createTopic("DefaultCluster", topic, 4, new HashMap<>());
        AtomicReference<Exception> last = new AtomicReference<>();
        boolean routed = Clients.await(10_000, () -> {
            try {
                return !admin.examineTopicRouteInfo(topic).getQueueDatas().isEmpty();
            } catch (Exception e) {
                last.set(e);
                return false;
            }
        });
        assertTrue(routed, "no route for " + topic + " within 10 s of admin.createTopic: " + last.get());
        return topic;
    }

    /**
     * Starts a push consumer of a new group on {@code topic}. With {@code firstAttempt} set, a
     * first delivery (reconsumeTimes 0) is recorded there and answered with RECONSUME_LATER, and
     * only redeliveries are queued.
     */
    private BlockingQueue<Delivery> consume(String groupPrefix, String topic, AtomicReference<Delivery> firstAttempt)
        throws MQClientException {
        BlockingQueue<Delivery> got = new LinkedBlockingQueue<>();
        DefaultMQPushConsumer c = clients.pushConsumer(groupPrefix + uid, topic, (msgs, ctx) -> {
            long now = System.currentTimeMillis();
            for (MessageExt m : msgs) {
                if (firstAttempt != null && m.getReconsumeTimes() == 0) {
                    firstAttempt.compareAndSet(null, new Delivery(m, now));
                    return ConsumeConcurrentlyStatus.RECONSUME_LATER;
                }
                got.add(new Delivery(m, now));
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.setConsumeMessageBatchMaxSize(1);
        clients.start(c);
        return got;
    }

    /** The next delivery with this body, waiting at most {@link #WAIT_MS}. */
    private static Delivery next(BlockingQueue<Delivery> got, String body, String what) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(WAIT_MS);
        // bounded by the deadline
        while (true) {
            long left = deadline - System.nanoTime();
            Delivery d = left > 0 ? got.poll(left, TimeUnit.NANOSECONDS) : null;
            if (d == null) {
                throw new AssertionError("timed out after " + WAIT_MS + " ms waiting for " + what);
            }
            if (body.equals(new String(d.msg().getBody(), StandardCharsets.UTF_8))) {
                return d;
            }
        }
    }

    private static TransactionSendResult sendInTransaction(TransactionMQProducer tp, Message m) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
        // bounded by the deadline: the route of a topic made a moment ago may still be on its way
        while (true) {
            try {
                return tp.sendMessageInTransaction(m, null);
            } catch (MQClientException e) {
                if (System.nanoTime() > deadline || !String.valueOf(e.getMessage()).contains("route")) {
                    throw e;
                }
                Thread.sleep(300);
            }
        }
    }
}
