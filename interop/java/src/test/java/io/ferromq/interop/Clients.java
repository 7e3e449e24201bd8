package io.ferromq.interop;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;

/** The Java client set up as the tests use it: pointed at one FerroMQ process, no VIP channel. */
final class Clients {

    private Clients() {
    }

    /** A started producer of `group`, distinguished by `instance` within this JVM. */
    static DefaultMQProducer producer(FerroMQBroker broker, String group, String instance) throws Exception {
        DefaultMQProducer p = new DefaultMQProducer(group);
        p.setNamesrvAddr(broker.namesrvAddr());
        p.setInstanceName(instance);
        p.setVipChannelEnabled(false);
        p.start();
        return p;
    }

    /**
     * Points `consumer` at the broker, subscribed to all of `topic` from its first offset and
     * recording what it receives; the caller starts it.
     */
    static Received recording(DefaultMQPushConsumer consumer, FerroMQBroker broker, String instance, String topic)
        throws Exception {
        consumer.setNamesrvAddr(broker.namesrvAddr());
        consumer.setInstanceName(instance);
        consumer.setVipChannelEnabled(false);
        consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        consumer.subscribe(topic, "*");
        Received rx = new Received(instance, consumer);
        consumer.registerMessageListener(rx.listener());
        return rx;
    }

    /** How long a test waits for deliveries it expects. */
    static final long DELIVERY_WAIT_MS = 30_000;

    /** Waits until `rx` has `n` deliveries, then checks it has exactly `n`. */
    static void awaitDeliveries(Received rx, int n, FerroMQBroker broker) throws InterruptedException {
        long deadline = System.currentTimeMillis() + DELIVERY_WAIT_MS;
        while (System.currentTimeMillis() < deadline) {
            if (rx.all().size() >= n) {
                assertEquals(n, rx.all().size(),
                    "deliveries:" + Received.describe(rx.all()));
                return;
            }
            Thread.sleep(100);
        }
        throw new AssertionError("the consumer had " + rx.all().size() + " deliveries, not " + n + ", after "
            + DELIVERY_WAIT_MS + " ms\n" + broker.output());
    }
}
