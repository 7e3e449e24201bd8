package io.ferromq.interop;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.common.message.MessageExt;

/** Records every delivery a push consumer sees (in arrival order, duplicates included). */
final class Received {

    final String name;
    final DefaultMQPushConsumer consumer;
    private final List<MessageExt> deliveries = new ArrayList<>();

    Received(String name, DefaultMQPushConsumer consumer) {
        this.name = name;
        this.consumer = consumer;
    }

    MessageListenerConcurrently listener() {
        return (msgs, ctx) -> {
            synchronized (deliveries) {
                deliveries.addAll(msgs);
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        };
    }

    List<MessageExt> all() {
        synchronized (deliveries) {
            return new ArrayList<>(deliveries);
        }
    }

    List<MessageExt> matching(Predicate<MessageExt> p) {
        List<MessageExt> out = new ArrayList<>();
        for (MessageExt m : all()) {
            if (p.test(m)) {
                out.add(m);
            }
        }
        return out;
    }

    static String body(MessageExt m) {
        return new String(m.getBody(), StandardCharsets.UTF_8);
    }

    static String describe(List<MessageExt> msgs) {
        StringBuilder sb = new StringBuilder();
        for (MessageExt m : msgs) {
            sb.append("\n  q=").append(m.getQueueId())
                .append(" off=").append(m.getQueueOffset())
                .append(" msgId=").append(m.getMsgId())
                .append(" tags=").append(JavaClientInteropTest.visible(m.getTags()))
                .append(" keys=").append(JavaClientInteropTest.visible(m.getKeys()))
                .append(" body=").append(body(m));
        }
        return sb.toString();
    }
}
