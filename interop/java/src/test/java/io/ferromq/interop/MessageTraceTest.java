package io.ferromq.interop;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The Java client's message tracing ({@code enableMsgTrace}) against FerroMQ: the producer's and
 * the consumer's trace dispatchers write to RMQ_SYS_TRACE_TOPIC (created by the broker with
 * traceTopicEnable=true), and {@code ferromq admin queryMsgTraceById} reads the send and the
 * consumption back, as mqadmin prints them.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class MessageTraceTest {

    private final String uid = UUID.randomUUID().toString().replace("-", "").substring(0, 12);

    @Test
    void sendAndConsumptionTracesAreReadBack() throws Exception {
        try (FerroMQBroker broker = FerroMQBroker.start("traceTopicEnable=true\n")) {
            String topic = "JavaTraced_" + uid;
            String pgroup = "pg_traced_" + uid;
            String cgroup = "cg_traced_" + uid;

            DefaultMQProducer producer = new DefaultMQProducer(pgroup, true);
            producer.setNamesrvAddr(broker.namesrvAddr());
            producer.setInstanceName("trace-p-" + uid);
            producer.setVipChannelEnabled(false);
            producer.start();
            // The producer stays up until its trace is read back: the client's shutdown hands
            // the last trace batch to an executor and stops the trace producer right after, so
            // a trace still waiting for its topic's route is lost (seen in CI).
            try {
                SendResult sent = producer.send(new Message(topic, "TagT", "order-" + uid,
                    "traced".getBytes(StandardCharsets.UTF_8)));
                assertEquals(SendStatus.SEND_OK, sent.getSendStatus());
                assertEquals("DefaultRegion", sent.getRegionId(), "the broker's MSG_REGION reaches the client");

                CountDownLatch consumed = new CountDownLatch(1);
                DefaultMQPushConsumer consumer = new DefaultMQPushConsumer(cgroup, true, null);
                consumer.setNamesrvAddr(broker.namesrvAddr());
                consumer.setInstanceName("trace-c-" + uid);
                consumer.setVipChannelEnabled(false);
                consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
                consumer.subscribe(topic, "*");
                consumer.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
                    consumed.countDown();
                    return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
                });
                consumer.start();
                try {
                    assertTrue(consumed.await(60, TimeUnit.SECONDS), "the traced message was not consumed");
                    // the consumer's SubAfter is written after the listener returns; the dispatcher
                    // sends within a few seconds
                    String json = "";
                    boolean both = false;
                    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
                    while (!both && System.nanoTime() < deadline) {
                        // compact: the CLI pretty-prints
                        json = admin(broker, "queryMsgTraceById", "-i", sent.getMsgId(), "--json").replaceAll("\\s+", "");
                        both = json.contains("\"type\":\"Pub\"") && json.contains("\"type\":\"SubAfter\"");
                        if (!both) {
                            Thread.sleep(500);
                        }
                    }
                    if (!both) {
                        fail("no Pub and SubAfter for " + sent.getMsgId() + "; last answer: " + json
                            + "\n" + broker.output());
                    }
                    assertTrue(json.contains("\"group\":\"" + pgroup + "\""), json);
                    assertTrue(json.contains("\"group\":\"" + cgroup + "\""), json);
                    assertTrue(json.contains("\"store_host\":\"" + broker.brokerAddr() + "\""), json);
                    assertTrue(json.contains("\"type\":\"SubBefore\""), json);
                    assertTrue(json.contains("\"success\":true"), json);
                    assertTrue(!json.contains("\"success\":false"), json);

                    String table = admin(broker, "queryMsgTraceById", "-i", sent.getMsgId());
                    for (String want : new String[] {"#ProducerGroup", "#ConsumerGroup", pgroup, cgroup, "success"}) {
                        assertTrue(table.contains(want), "table lacks " + want + ":\n" + table);
                    }
                } finally {
                    consumer.shutdown();
                }
            } finally {
                producer.shutdown();
            }
        }
    }

    private static String admin(FerroMQBroker broker, String... args) throws Exception {
        java.util.List<String> cmd = new java.util.ArrayList<>();
        cmd.add(FerroMQBroker.binaryPath().toString());
        cmd.add("admin");
        cmd.addAll(java.util.List.of(args));
        cmd.add("-n");
        cmd.add(broker.namesrvAddr());
        cmd.add("--log-level");
        cmd.add("error");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        p.getOutputStream().close();
        String out;
        try (InputStream in = p.getInputStream()) {
            ByteArrayOutputStream buf = new ByteArrayOutputStream();
            in.transferTo(buf);
            out = buf.toString(StandardCharsets.UTF_8);
        }
        if (!p.waitFor(30, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            fail("ferromq admin did not finish: " + String.join(" ", cmd));
        }
        return out;
    }
}
