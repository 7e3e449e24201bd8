package io.ferromq.interop.v5;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;
import org.apache.rocketmq.client.apis.ClientConfiguration;
import org.apache.rocketmq.client.apis.ClientException;
import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.consumer.FilterExpression;
import org.apache.rocketmq.client.apis.consumer.FilterExpressionType;
import org.apache.rocketmq.client.apis.consumer.MessageListener;
import org.apache.rocketmq.client.apis.consumer.PushConsumer;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.message.Message;
import org.apache.rocketmq.client.apis.message.MessageBuilder;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.apache.rocketmq.client.apis.producer.ProducerBuilder;
import org.apache.rocketmq.client.apis.producer.TransactionChecker;

/** Small helpers around the official v5 Java client (rocketmq-client-java). */
final class Clients {
    static final ClientServiceProvider PROVIDER = ClientServiceProvider.loadService();
    /** The shortest invisible duration Apache's proxy accepts on receive (minInvisibleTimeMillsForRecv). */
    static final Duration INVISIBLE = Duration.ofSeconds(10);
    static final Duration AWAIT = Duration.ofSeconds(2);

    /** The client's default transport is TLS (ClientConfigurationBuilder.sslEnabled = true). */
    static ClientConfiguration config(boolean tls) throws Exception {
        return ClientConfiguration.newBuilder()
            .setEndpoints(V5Target.get().grpcEndpoint)
            .enableSsl(tls)
            .setRequestTimeout(Duration.ofSeconds(5))
            .build();
    }

    static ClientConfiguration config() throws Exception {
        return config(true);
    }

    static Producer producer(String... topics) throws Exception {
        return PROVIDER.newProducerBuilder().setClientConfiguration(config()).setTopics(topics).build();
    }

    static Producer producer(ClientConfiguration conf, TransactionChecker checker, String... topics)
        throws ClientException {
        ProducerBuilder b = PROVIDER.newProducerBuilder().setClientConfiguration(conf).setTopics(topics);
        if (checker != null) {
            b.setTransactionChecker(checker);
        }
        return b.build();
    }

    static SimpleConsumer simple(String group, String topic) throws Exception {
        return simple(config(), group, topic);
    }

    static SimpleConsumer simple(ClientConfiguration conf, String group, String topic) throws ClientException {
        return PROVIDER.newSimpleConsumerBuilder()
            .setClientConfiguration(conf)
            .setConsumerGroup(group)
            .setAwaitDuration(AWAIT)
            .setSubscriptionExpressions(Map.of(topic, FilterExpression.SUB_ALL))
            .build();
    }

    static PushConsumer push(String group, String topic, MessageListener listener) throws Exception {
        return PROVIDER.newPushConsumerBuilder()
            .setClientConfiguration(config())
            .setConsumerGroup(group)
            .setSubscriptionExpressions(Map.of(topic, new FilterExpression("*", FilterExpressionType.TAG)))
            .setConsumptionThreadCount(4)
            .setMessageListener(listener)
            .build();
    }

    static MessageBuilder message(String topic, String body) {
        return PROVIDER.newMessageBuilder().setTopic(topic).setBody(body.getBytes(StandardCharsets.UTF_8));
    }

    static String body(MessageView m) {
        ByteBuffer b = m.getBody().duplicate();
        byte[] a = new byte[b.remaining()];
        b.get(a);
        return new String(a, StandardCharsets.UTF_8);
    }

    static String describe(MessageView m) {
        return "{id=" + m.getMessageId() + " body=" + body(m) + " tag=" + m.getTag().orElse("")
            + " keys=" + m.getKeys() + " group=" + m.getMessageGroup().orElse("") + " attempt="
            + m.getDeliveryAttempt() + " props=" + m.getProperties() + "}";
    }

    /** One received message with the time it arrived. */
    record Got(MessageView view, long atMillis) {
    }

    /**
     * Receives (batches of up to 16, the given invisible duration) until {@code done} holds for
     * everything received so far, or the deadline passes; acks each message when {@code ack}.
     */
    static List<Got> receiveUntil(SimpleConsumer c, Duration invisible, boolean ack, Duration within,
                                  Predicate<List<Got>> done) throws ClientException {
        List<Got> got = new ArrayList<>();
        long deadline = System.nanoTime() + within.toNanos();
        while (!done.test(got) && System.nanoTime() < deadline) {
            List<MessageView> batch = c.receive(16, invisible);
            long now = System.currentTimeMillis();
            for (MessageView m : batch) {
                got.add(new Got(m, now));
                if (ack) {
                    c.ack(m);
                }
            }
        }
        return got;
    }

    /** Receives for the whole period; returns whatever came (acking it when {@code ack}). */
    static List<Got> receiveFor(SimpleConsumer c, Duration invisible, boolean ack, Duration period)
        throws ClientException {
        return receiveUntil(c, invisible, ack, period, l -> false);
    }

    static List<String> bodies(List<Got> got) {
        List<String> out = new ArrayList<>();
        for (Got g : got) {
            out.add(body(g.view()));
        }
        return out;
    }

    static String describeAll(List<Got> got) {
        List<String> out = new ArrayList<>();
        for (Got g : got) {
            out.add(describe(g.view()));
        }
        return String.join("\n  ", out);
    }

    static <T> List<T> sorted(List<T> l, java.util.Comparator<T> c) {
        List<T> copy = new ArrayList<>(l);
        copy.sort(c);
        return Collections.unmodifiableList(copy);
    }

    static void closeQuietly(AutoCloseable c) {
        if (c == null) {
            return;
        }
        try {
            c.close();
        } catch (Exception e) {
            System.out.println("[harness] close: " + e);
        }
    }

    private Clients() {
    }
}
