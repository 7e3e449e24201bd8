package io.ferromq.interop;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.exception.MQBrokerException;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.RequestCallback;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.client.utils.MessageUtil;
import org.apache.rocketmq.common.MixAll;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageAccessor;
import org.apache.rocketmq.common.message.MessageConst;
import org.apache.rocketmq.common.message.MessageExt;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Request-reply with the Java 4.x client: {@code DefaultMQProducer.request} (sync and with a
 * callback) against a consumer that answers with {@code MessageUtil.createReplyMessage}, sent
 * as SEND_REPLY_MESSAGE_V2 (325) and pushed back to the requester (326).
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class RequestReplyTest {

    private final String uid = UUID.randomUUID().toString().replace("-", "").substring(0, 12);

    @Test
    void requestsAreAnsweredSyncAndByCallback() throws Exception {
        try (FerroMQBroker broker = FerroMQBroker.start()) {
            String topic = "JavaRequest_" + uid;
            DefaultMQProducer requester = producer(broker, "requester");
            DefaultMQProducer replier = producer(broker, "replier");
            List<Throwable> replyFailures = new CopyOnWriteArrayList<>();
            DefaultMQPushConsumer consumer = new DefaultMQPushConsumer("cg_reply_" + uid);
            consumer.setNamesrvAddr(broker.namesrvAddr());
            consumer.setInstanceName("reply-c-" + uid);
            consumer.setVipChannelEnabled(false);
            consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
            consumer.subscribe(topic, "*");
            consumer.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
                for (MessageExt m : msgs) {
                    if (m.getProperty(MessageConst.PROPERTY_MESSAGE_REPLY_TO_CLIENT) == null) {
                        continue; // the message that created the topic
                    }
                    try {
                        String body = new String(m.getBody(), StandardCharsets.UTF_8);
                        Message reply = MessageUtil.createReplyMessage(m, ("re:" + body).getBytes(StandardCharsets.UTF_8));
                        SendResult r = replier.send(reply);
                        if (r.getSendStatus() != SendStatus.SEND_OK) {
                            replyFailures.add(new IllegalStateException("reply status " + r));
                        }
                    } catch (Exception e) {
                        replyFailures.add(e);
                    }
                }
                return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
            });
            try {
                assertEquals(SendStatus.SEND_OK, requester.send(new Message(topic, "create".getBytes(StandardCharsets.UTF_8)))
                    .getSendStatus());
                consumer.start();

                Message answer = requester.request(new Message(topic, "ping".getBytes(StandardCharsets.UTF_8)), 30_000);
                assertNotNull(answer, "no reply; the replier's failures: " + replyFailures + "\n" + broker.output());
                assertEquals("re:ping", new String(answer.getBody(), StandardCharsets.UTF_8));
                assertNotNull(answer.getProperty(MessageConst.PROPERTY_CORRELATION_ID));

                CompletableFuture<Message> byCallback = new CompletableFuture<>();
                requester.request(new Message(topic, "ping-async".getBytes(StandardCharsets.UTF_8)), new RequestCallback() {
                    @Override
                    public void onSuccess(Message message) {
                        // The 4.9 client calls this once with null when the request is sent
                        // (its send callback runs executeRequestCallback), then with the reply.
                        if (message != null) {
                            byCallback.complete(message);
                        }
                    }

                    @Override
                    public void onException(Throwable e) {
                        byCallback.completeExceptionally(e);
                    }
                }, 30_000);
                Message asyncAnswer = byCallback.get(40, TimeUnit.SECONDS);
                assertEquals("re:ping-async", new String(asyncAnswer.getBody(), StandardCharsets.UTF_8));
                assertTrue(replyFailures.isEmpty(), "reply sends failed: " + replyFailures);
            } finally {
                consumer.shutdown();
                replier.shutdown();
                requester.shutdown();
            }
        }
    }

    @Test
    void aReplyToAGoneRequesterIsRefusedNamingIt() throws Exception {
        try (FerroMQBroker broker = FerroMQBroker.start()) {
            DefaultMQProducer replier = producer(broker, "lonely");
            Message reply = new Message("DefaultCluster_REPLY_TOPIC", "late".getBytes(StandardCharsets.UTF_8));
            MessageAccessor.putProperty(reply, MessageConst.PROPERTY_MESSAGE_TYPE, MixAll.REPLY_MESSAGE_FLAG);
            MessageAccessor.putProperty(reply, MessageConst.PROPERTY_CORRELATION_ID, "c-" + uid);
            MessageAccessor.putProperty(reply, MessageConst.PROPERTY_MESSAGE_REPLY_TO_CLIENT, "127.0.0.1@gone");
            try {
                String refused = null;
                try {
                    replier.send(reply);
                } catch (Exception e) {
                    // SYSTEM_ERROR is retried, so the broker's answer is the cause.
                    StringBuilder why = new StringBuilder();
                    for (Throwable t = e; t != null; t = t.getCause()) {
                        why.append(t instanceof MQBrokerException ? ((MQBrokerException) t).getErrorMessage() : t.getMessage())
                            .append(" / ");
                    }
                    refused = why.toString();
                }
                assertNotNull(refused, "a reply to a gone requester was accepted");
                assertTrue(refused.contains("channel of <127.0.0.1@gone> not found"), refused);

                Message unanswered = null;
                try {
                    unanswered = replier.request(
                        new Message("JavaUnanswered_" + uid, "x".getBytes(StandardCharsets.UTF_8)), 1_000);
                } catch (Exception timedOut) {
                    // RequestTimeoutException: nobody consumes the topic
                }
                assertNull(unanswered);
            } finally {
                replier.shutdown();
            }
        }
    }

    private DefaultMQProducer producer(FerroMQBroker broker, String what) throws Exception {
        DefaultMQProducer p = new DefaultMQProducer("pg_" + what + "_" + uid);
        p.setNamesrvAddr(broker.namesrvAddr());
        p.setInstanceName("rr-" + what + "-" + uid);
        p.setVipChannelEnabled(false);
        p.setRetryTimesWhenSendFailed(0);
        p.start();
        return p;
    }
}
