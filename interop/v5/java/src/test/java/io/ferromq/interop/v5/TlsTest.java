package io.ferromq.interop.v5;

import static io.ferromq.interop.v5.Clients.INVISIBLE;
import static io.ferromq.interop.v5.Clients.describeAll;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.apache.rocketmq.client.apis.ClientConfiguration;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The same gRPC port serves TLS (the client's default, enableSsl(true); the client trusts any
 * certificate) and plaintext (enableSsl(false)). A producer and a consumer each way.
 */
@ExtendWith(V5Extension.class)
class TlsTest {

    void roundTrip(boolean tls) throws Exception {
        String topic = Resources.TOPIC_TLS;
        String mode = tls ? "tls" : "plaintext";
        ClientConfiguration conf = Clients.config(tls);
        Producer producer = Clients.producer(conf, null, topic);
        SimpleConsumer consumer = Clients.simple(conf, Resources.GROUP_TLS, topic);
        try {
            Set<String> want = new TreeSet<>();
            for (int i = 0; i < 3; i++) {
                String body = mode + "-" + i;
                producer.send(Clients.message(topic, body).setTag(mode).setKeys(body).build());
                want.add(body);
            }
            List<Clients.Got> got = Clients.receiveUntil(consumer, INVISIBLE, true, Duration.ofSeconds(20),
                l -> l.size() >= want.size());
            assertEquals(want, new TreeSet<>(Clients.bodies(got)), "over " + mode + ":\n  " + describeAll(got));
            assertEquals(want.size(), got.size(), "over " + mode + ":\n  " + describeAll(got));
        } finally {
            Clients.closeQuietly(consumer);
            Clients.closeQuietly(producer);
        }
    }

    @Test
    void tlsProducerAndConsumer() throws Exception {
        roundTrip(true);
    }

    @Test
    void plaintextProducerAndConsumer() throws Exception {
        roundTrip(false);
    }
}
