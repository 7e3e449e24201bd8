package io.ferromq.interop;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.handler.ssl.util.SelfSignedCertificate;
import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.junit.jupiter.api.Test;

/**
 * The official Java client with TLS on ({@code setUseTLS(true)}, its default trust-all test
 * mode) against a broker in {@code tls.server.mode=enforcing}, with a certificate made at test
 * time: sends and consumption work over TLS; a plaintext client is refused.
 */
class TlsInteropTest {

    private final String uid = UUID.randomUUID().toString().replace("-", "").substring(0, 12);

    @Test
    void produceAndConsumeOverTlsPlaintextRefused() throws Exception {
        SelfSignedCertificate cert = new SelfSignedCertificate("localhost");
        String conf = "tls.server.mode=enforcing\n"
            + "tls.server.certPath=" + cert.certificate().getAbsolutePath() + "\n"
            + "tls.server.keyPath=" + cert.privateKey().getAbsolutePath() + "\n";
        String topic = "JavaTls_" + uid;
        DefaultMQProducer producer = null;
        DefaultMQProducer plain = null;
        DefaultMQPushConsumer consumer = null;
        try (FerroMQBroker broker = FerroMQBroker.start(conf)) {
            try {
                producer = producer(broker, "tls", true);
                Set<String> sent = new HashSet<>();
                for (int i = 0; i < 5; i++) {
                    String body = "tls-" + i + "-" + uid;
                    SendResult r = producer.send(new Message(topic, body.getBytes(StandardCharsets.UTF_8)));
                    assertEquals(SendStatus.SEND_OK, r.getSendStatus(), r.toString());
                    sent.add(body);
                }

                consumer = new DefaultMQPushConsumer("cg_tls_" + uid);
                consumer.setNamesrvAddr(broker.namesrvAddr());
                consumer.setInstanceName("it-tls-c-" + uid);
                consumer.setVipChannelEnabled(false);
                consumer.setUseTLS(true);
                consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
                consumer.subscribe(topic, "*");
                Received rx = new Received("tls", consumer);
                consumer.registerMessageListener(rx.listener());
                consumer.start();
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(40);
                Set<String> got = new HashSet<>();
                while (!got.containsAll(sent) && System.nanoTime() < deadline) {
                    Thread.sleep(100);
                    got.clear();
                    for (MessageExt m : rx.all()) {
                        got.add(Received.body(m));
                    }
                }
                assertTrue(got.containsAll(sent), "consumed over TLS: " + got + ", sent: " + sent);

                // Without TLS the client still gets routes (the built-in name server takes
                // both), but the broker refuses its plaintext.
                plain = producer(broker, "plain", false);
                DefaultMQProducer p = plain;
                Exception refused = assertThrows(Exception.class,
                    () -> p.send(new Message(topic, "plain".getBytes(StandardCharsets.UTF_8))));
                // The broker's output reaches us through a pump thread: wait for it (bounded).
                long logDeadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
                while (!broker.output().contains("TLS handshake failed") && System.nanoTime() < logDeadline) {
                    Thread.sleep(50);
                }
                assertTrue(broker.output().contains("TLS handshake failed"),
                    "refusal logged; the client saw " + refused + "\n" + broker.output());
            } finally {
                if (consumer != null) consumer.shutdown();
                if (producer != null) producer.shutdown();
                if (plain != null) plain.shutdown();
            }
        } finally {
            cert.delete();
        }
    }

    private DefaultMQProducer producer(FerroMQBroker broker, String what, boolean tls) throws Exception {
        DefaultMQProducer p = new DefaultMQProducer("pg_" + what + "_" + uid);
        p.setNamesrvAddr(broker.namesrvAddr());
        p.setInstanceName("it-" + what + "-p-" + uid);
        p.setVipChannelEnabled(false);
        p.setUseTLS(tls);
        p.setRetryTimesWhenSendFailed(0);
        p.setSendMsgTimeout(5000);
        p.start();
        return p;
    }
}
