package io.ferromq.interop;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.message.Message;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@code ferromq admin queryMsgById -g -d} and {@code queryMsgByUniqueKey -g -d}: a stored
 * message is handed to one running Java 4.x consumer (by CONSUME_MESSAGE_DIRECTLY (309), relayed
 * by the broker), whose listener consumes it again and whose ConsumeMessageDirectlyResult the
 * admin tool prints.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ConsumeDirectlyTest {

    private final String uid = UUID.randomUUID().toString().replace("-", "").substring(0, 12);

    @Test
    void theAdminToolHasANamedConsumerConsumeAStoredMessage() throws Exception {
        try (FerroMQBroker broker = FerroMQBroker.start()) {
            String topic = "JavaDirect_" + uid;
            String group = "cg_direct_" + uid;
            DefaultMQProducer producer = Clients.producer(broker, "pg_direct_" + uid, "direct-p-" + uid);
            DefaultMQPushConsumer consumer = new DefaultMQPushConsumer(group);
            try {
                SendResult sent = producer.send(new Message(topic, ("direct-" + uid).getBytes(StandardCharsets.UTF_8)));
                assertEquals(SendStatus.SEND_OK, sent.getSendStatus());

                Received rx = Clients.recording(consumer, broker, "direct-c-" + uid, topic);
                consumer.start();
                String clientId = consumer.buildMQClientId();
                Clients.awaitDeliveries(rx, 1, broker);

                String byId = broker.admin("queryMsgById", "-i", sent.getOffsetMsgId(), "-g", group, "-d", clientId);
                assertTrue(byId.contains("CR_SUCCESS"), "queryMsgById -g -d: " + byId);
                Clients.awaitDeliveries(rx, 2, broker);

                String byKey = broker.admin("queryMsgByUniqueKey", "-i", sent.getMsgId(), "-t", topic, "-g", group,
                    "-d", clientId);
                assertTrue(byKey.contains("CR_SUCCESS"), "queryMsgByUniqueKey -g -d: " + byKey);
                Clients.awaitDeliveries(rx, 3, broker);
                assertTrue(rx.all().stream().allMatch(m -> Received.body(m).equals("direct-" + uid)),
                    "every delivery is the one message:" + Received.describe(rx.all()));

                String printed = broker.admin("queryMsgByUniqueKey", "-i", sent.getMsgId(), "-t", topic);
                assertTrue(printed.contains("direct-" + uid), "queryMsgByUniqueKey prints the message: " + printed);

                IllegalStateException gone = assertThrows(IllegalStateException.class,
                    () -> broker.admin("queryMsgById", "-i", sent.getOffsetMsgId(), "-g", group, "-d", "127.0.0.1@nobody"));
                assertTrue(gone.getMessage().contains("not online"), gone.getMessage());
                assertEquals(3, rx.all().size(), "a consumer not online consumed nothing:" + Received.describe(rx.all()));
            } finally {
                consumer.shutdown();
                producer.shutdown();
            }
        }
    }
}
