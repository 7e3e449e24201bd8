package io.ferromq.interop;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.message.Message;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@code ferromq admin consumerStatus}: a running Java 4.x consumer's own report, asked through
 * the broker with GET_CONSUMER_RUNNING_INFO (307), as Apache's mqadmin command shows it.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ConsumerStatusTest {

    private final String uid = UUID.randomUUID().toString().replace("-", "").substring(0, 12);

    @Test
    void theAdminToolShowsEachConsumerAsItReportsItself() throws Exception {
        try (FerroMQBroker broker = FerroMQBroker.start()) {
            String topic = "JavaStatus_" + uid;
            String group = "cg_status_" + uid;
            DefaultMQProducer producer = Clients.producer(broker, "pg_status_" + uid, "status-p-" + uid);
            DefaultMQPushConsumer consumer = new DefaultMQPushConsumer(group);
            try {
                assertEquals(SendStatus.SEND_OK,
                    producer.send(new Message(topic, "status".getBytes(StandardCharsets.UTF_8))).getSendStatus());
                Received rx = Clients.recording(consumer, broker, "status-c-" + uid, topic);
                consumer.start();
                Clients.awaitDeliveries(rx, 1, broker);
                String clientId = consumer.buildMQClientId();

                String all = broker.admin("consumerStatus", "-g", group);
                assertTrue(all.contains(clientId), "consumerStatus lists the client: " + all);
                assertTrue(all.contains("CONSUME_PASSIVELY") && all.contains("CLUSTERING"), all);
                assertTrue(all.contains("Same subscription in the same group of consumer"), all);

                // The client moves its in-memory offset just after its listener returns: ask
                // again (bounded) until the report shows it.
                String one = "";
                List<String[]> rows = List.of();
                for (int attempt = 0; attempt < 20; attempt++) {
                    one = broker.admin("consumerStatus", "-g", group, "-i", clientId);
                    // Rows: topic, broker, queue, commit offset, cached messages, ...
                    rows = one.lines().map(l -> l.trim().split("\\s+"))
                        .filter(cells -> cells.length == 8 && cells[0].equals(topic)).toList();
                    if (rows.stream().anyMatch(cells -> cells[3].equals("1"))) {
                        break;
                    }
                    Thread.sleep(250);
                }
                assertTrue(one.contains("#Queues"), one);
                assertEquals(4, rows.size(), "the client holds the topic's 4 queues:\n" + one);
                assertEquals(1, rows.stream().filter(cells -> cells[3].equals("1")).count(),
                    "the queue it consumed from shows commit offset 1, the others 0:\n" + one);

                IllegalStateException nobody = assertThrows(IllegalStateException.class,
                    () -> broker.admin("consumerStatus", "-g", "cg_nobody_" + uid));
                assertTrue(nobody.getMessage().contains("not online"), nobody.getMessage());
            } finally {
                consumer.shutdown();
                producer.shutdown();
            }
        }
    }
}
