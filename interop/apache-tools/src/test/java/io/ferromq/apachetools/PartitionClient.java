package io.ferromq.apachetools;

import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.exception.MQBrokerException;
import org.apache.rocketmq.client.exception.MQClientException;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;

/**
 * Apache's Java client (rocketmq-client 5.5.0) as a program of its own, for a test that runs it
 * where a JUnit test cannot: interop/go's {@code TestControllerModePartition} starts it inside its
 * network lab (the client's side of the partition) when {@code FERROMQ_JAVA_PARTITION_CP} gives
 * this class path, and checks what it wrote. Not a JUnit test.
 *
 * <pre>
 * java -cp CP io.ferromq.apachetools.PartitionClient NAMESRV TOPIC OUT_DIR MAX_SECONDS
 * </pre>
 *
 * <p>Starts a {@link DefaultMQPushConsumer} of a group of its own on TOPIC (clustering, from the
 * first offset, every body it is given recorded) and a {@link DefaultMQProducer} that sends
 * {@code j-0}, {@code j-1}, ... synchronously without pause (50 ms after a failure), tuned as a
 * user who wants fast failover would: routes polled every second instead of every 30 s, Apache's
 * default two retries within a 3 s send timeout. Files in OUT_DIR, one line per event, each line
 * written whole and flushed (a reader may see the file grow):
 *
 * <ul>
 * <li>{@code sends.tsv}: {@code OK body queueId queueOffset offsetMsgId startMs endMs} or
 * {@code ERR body kind startMs endMs text} (tab-separated, epoch milliseconds);</li>
 * <li>{@code received.tsv}: {@code body queueId queueOffset storeHost commitLogOffset receivedMs};</li>
 * <li>{@code producer.done}: created once the producer stopped and {@code sends.tsv} is complete.</li>
 * </ul>
 *
 * <p>Standard input: a line {@code stop} stops the producer; end of input shuts both clients down
 * and exits 0. After MAX_SECONDS it exits 3 whatever it was told. Progress goes to standard output,
 * lines starting {@code [java]}.
 */
public final class PartitionClient {

    private static final long SEND_TIMEOUT_MS = 3_000;

    private final String namesrv;
    private final String topic;
    private final Path dir;
    private final BufferedWriter sends;
    private final BufferedWriter received;
    private final String uid = UUID.randomUUID().toString().replace("-", "").substring(0, 10);
    private final AtomicLong sent = new AtomicLong();
    private final AtomicLong acked = new AtomicLong();
    private final AtomicLong deliveries = new AtomicLong();
    private final long startMs = System.currentTimeMillis();
    private volatile boolean stopProducing;

    private PartitionClient(String namesrv, String topic, Path dir) throws IOException {
        this.namesrv = namesrv;
        this.topic = topic;
        this.dir = dir;
        this.sends = Files.newBufferedWriter(dir.resolve("sends.tsv"), StandardCharsets.UTF_8);
        this.received = Files.newBufferedWriter(dir.resolve("received.tsv"), StandardCharsets.UTF_8);
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 4) {
            System.err.println("usage: PartitionClient NAMESRV TOPIC OUT_DIR MAX_SECONDS");
            System.exit(2);
        }
        long maxSeconds = Long.parseLong(args[3]);
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(TimeUnit.SECONDS.toMillis(maxSeconds));
            } catch (InterruptedException e) {
                return;
            }
            System.out.println("[java] still running after " + maxSeconds + " s: exiting");
            System.out.flush();
            Runtime.getRuntime().halt(3);
        }, "partition-client-watchdog");
        watchdog.setDaemon(true);
        watchdog.start();
        new PartitionClient(args[0], args[1], Files.createDirectories(Paths.get(args[2]))).run();
        System.exit(0);
    }

    private void run() throws Exception {
        DefaultMQPushConsumer consumer = new DefaultMQPushConsumer("JavaPartitionCG_" + uid);
        consumer.setNamesrvAddr(namesrv);
        consumer.setInstanceName("JavaPartitionCG-" + uid);
        consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        consumer.setPersistConsumerOffsetInterval(1_000);
        consumer.setPollNameServerInterval(1_000);
        consumer.subscribe(topic, "*");
        consumer.registerMessageListener((MessageListenerConcurrently) (msgs, context) -> {
            for (MessageExt m : msgs) {
                deliveries.incrementAndGet();
                line(received, new String(m.getBody(), StandardCharsets.UTF_8) + "\t" + m.getQueueId() + "\t"
                    + m.getQueueOffset() + "\t" + hostPort(m.getStoreHost()) + "\t" + m.getCommitLogOffset()
                    + "\t" + System.currentTimeMillis());
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        consumer.start();

        DefaultMQProducer producer = new DefaultMQProducer("JavaPartitionPG_" + uid);
        producer.setNamesrvAddr(namesrv);
        producer.setInstanceName("JavaPartitionPG-" + uid);
        // routes every second, not every 30 s: the dead master's address is dropped within a second
        producer.setPollNameServerInterval(1_000);
        producer.setRetryTimesWhenSendFailed(2);
        producer.setSendMsgTimeout((int) SEND_TIMEOUT_MS);
        producer.start();
        System.out.println("[java] started: producer " + producer.getProducerGroup() + ", consumer "
            + consumer.getConsumerGroup() + ", client ip " + producer.getClientIP() + ", name server " + namesrv);

        Thread producing = new Thread(() -> produce(producer), "partition-client-producer");
        producing.start();
        Thread progress = new Thread(this::progress, "partition-client-progress");
        progress.setDaemon(true);
        progress.start();

        // bounded by the watchdog
        try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
            String cmd;
            while ((cmd = in.readLine()) != null) {
                if (cmd.trim().equals("stop")) {
                    stopProducer(producing);
                }
            }
        }
        stopProducer(producing);
        consumer.shutdown();
        producer.shutdown();
        synchronized (received) {
            received.close();
        }
        System.out.println("[java] shut down: sent " + sent.get() + ", acknowledged " + acked.get() + ", deliveries "
            + deliveries.get());
    }

    private void produce(DefaultMQProducer producer) {
        // bounded by stopProducing and the watchdog
        for (long n = 0; !stopProducing; n++) {
            String body = "j-" + n;
            Message m = new Message(topic, "TagJ", body.getBytes(StandardCharsets.UTF_8));
            m.setKeys(body);
            long start = System.currentTimeMillis();
            boolean ok = false;
            try {
                SendResult r = producer.send(m);
                long end = System.currentTimeMillis();
                if (r.getSendStatus() == SendStatus.SEND_OK) {
                    ok = true;
                    if (acked.incrementAndGet() == 1) {
                        System.out.println("[java] first SEND_OK " + (end - startMs) + " ms after the start");
                    }
                    line(sends, "OK\t" + body + "\t" + r.getMessageQueue().getQueueId() + "\t" + r.getQueueOffset()
                        + "\t" + r.getOffsetMsgId() + "\t" + start + "\t" + end);
                } else {
                    line(sends, "ERR\t" + body + "\tstatus " + r.getSendStatus() + "\t" + start + "\t" + end + "\t"
                        + oneLine(r.toString()));
                }
            } catch (Exception e) {
                line(sends, "ERR\t" + body + "\t" + errorKind(e) + "\t" + start + "\t" + System.currentTimeMillis() + "\t"
                    + oneLine(e.toString()));
            }
            sent.incrementAndGet();
            if (!ok) {
                try {
                    Thread.sleep(50); // no spinning while the group has no reachable master
                } catch (InterruptedException e) {
                    return;
                }
            }
        }
    }

    private void stopProducer(Thread producing) throws IOException, InterruptedException {
        if (stopProducing) {
            return;
        }
        stopProducing = true;
        // a send takes at most the send timeout
        producing.join(30_000);
        if (producing.isAlive()) {
            System.out.println("[java] the producer thread did not stop within 30 s");
        }
        synchronized (sends) {
            sends.close();
        }
        Files.writeString(dir.resolve("producer.done"), sent.get() + " sent\n");
        System.out.println("[java] producer stopped: sent " + sent.get() + ", acknowledged " + acked.get());
    }

    private void progress() {
        // a daemon thread: ends with the program
        while (true) {
            try {
                Thread.sleep(5_000);
            } catch (InterruptedException e) {
                return;
            }
            System.out.println("[java] sent " + sent.get() + ", acknowledged " + acked.get() + ", deliveries "
                + deliveries.get() + (stopProducing ? " (producer stopped)" : ""));
        }
    }

    private static void line(BufferedWriter w, String text) {
        synchronized (w) {
            try {
                w.write(text + "\n");
                w.flush();
            } catch (IOException e) {
                System.out.println("[java] cannot write: " + e);
            }
        }
    }

    /** The exception's class, with the broker's code or the client's cause where there is one. */
    static String errorKind(Exception e) {
        if (e instanceof MQBrokerException b) {
            return "MQBrokerException code " + b.getResponseCode();
        }
        if (e instanceof MQClientException c && c.getCause() != null) {
            // after its retries the client wraps the last failure, e.g. a broker's refusal
            return "MQClientException(" + (c.getCause() instanceof MQBrokerException b
                ? "MQBrokerException code " + b.getResponseCode() : c.getCause().getClass().getSimpleName()) + ")";
        }
        return e.getClass().getSimpleName();
    }

    private static String oneLine(String s) {
        String first = s.lines().findFirst().orElse("");
        return first.replace('\t', ' ');
    }

    private static String hostPort(SocketAddress a) {
        if (a instanceof InetSocketAddress i && i.getAddress() != null) {
            return i.getAddress().getHostAddress() + ":" + i.getPort();
        }
        return String.valueOf(a);
    }
}
