// Sends or receives with Apache's Java client (4.x) with message tracing on
// (enableMsgTrace), for the dashboard's browser tests. Run as a source file:
//   java -cp <rocketmq-client class path> TraceClient.java send    <namesrv> <topic> <group> <count>
//   java -cp <rocketmq-client class path> TraceClient.java receive <namesrv> <topic> <group> <count>
// send prints one {"msgId": …, "offsetMsgId": …} line per message; receive exits 0 once it
// consumed <count> messages (at most 60 s).
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;

public class TraceClient {
    public static void main(String[] args) throws Exception {
        String mode = args[0], namesrv = args[1], topic = args[2], group = args[3];
        int count = Integer.parseInt(args[4]);
        if (mode.equals("send")) {
            DefaultMQProducer p = new DefaultMQProducer(group, true);
            p.setNamesrvAddr(namesrv);
            p.setVipChannelEnabled(false);
            p.start();
            for (int i = 0; i < count; i++) {
                SendResult r = p.send(new Message(topic, "java-tag", "java-key-" + i,
                    ("from-java-" + i).getBytes(StandardCharsets.UTF_8)));
                System.out.println("{\"msgId\":\"" + r.getMsgId() + "\",\"offsetMsgId\":\"" + r.getOffsetMsgId() + "\"}");
            }
            // The trace dispatcher sends its batch from a background thread, asynchronously,
            // and its first send waits for the trace topic's route; shutdown() gives it 500 ms
            // and then stops the trace producer, which can drop the send record. Give the
            // batch time to go out first, as the receive side does for its SubAfter.
            Thread.sleep(3000);
            p.shutdown();
        } else {
            CountDownLatch left = new CountDownLatch(count);
            DefaultMQPushConsumer c = new DefaultMQPushConsumer(group, true, null);
            c.setNamesrvAddr(namesrv);
            c.setVipChannelEnabled(false);
            c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
            c.subscribe(topic, "*");
            c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
                msgs.forEach(m -> left.countDown());
                return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
            });
            c.start();
            boolean done = left.await(60, TimeUnit.SECONDS);
            Thread.sleep(1000); // the SubAfter is queued after the listener returns
            c.shutdown();
            if (!done) {
                System.err.println("consumed fewer than " + count);
                System.exit(1);
            }
        }
        System.exit(0);
    }
}
