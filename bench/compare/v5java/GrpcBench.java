// Sync sends through a RocketMQ 5.x gRPC endpoint with the official Java client
// (org.apache.rocketmq:rocketmq-client-java 5.2.0); prints `RESULT {json}` as its last line,
// which bench/compare/grpc.py reads. Run as a single-file source program:
//
//   java -cp "$(cat target/bench/v5java.classpath)" bench/compare/v5java/GrpcBench.java \
//       --endpoint 127.0.0.1:8081 --topic T --producers 8 --size 1024 --warmup 10 --seconds 15
//
// --producers Producer instances (each its own client and connection), one thread each, sending
// synchronously. --warmup seconds of the same load first, unmeasured (the JIT of this JVM and of
// the server settles), then --seconds measured: a send is measured when it starts inside the
// window; its latency is the send call's. maxAttempts 1: the client does not retry (it keeps its
// own maxAttempts whatever the server's settings say), so every failed attempt is a failed send.
// Lines `PHASE measure` and `PHASE done` mark the measured window for the harness.

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.rocketmq.client.apis.ClientConfiguration;
import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.message.Message;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.apache.rocketmq.client.apis.producer.SendReceipt;

public class GrpcBench {
    static String endpoint = "127.0.0.1:8081";
    static String topic = "GrpcCompare";
    static int producers = 1;
    static int size = 1024;
    static int seconds = 15;
    static int warmup = 10;
    static boolean tls = false;

    /** One producer thread's tallies. */
    static final class Tally {
        long[] lat = new long[1 << 16];
        int n;
        long failed, warm, warmFailed, lastDoneNanos;

        void add(long nanos) {
            if (n == lat.length) {
                lat = Arrays.copyOf(lat, n * 2);
            }
            lat[n++] = nanos;
        }
    }

    public static void main(String[] args) throws Exception {
        for (int i = 0; i + 1 < args.length; i += 2) {
            String v = args[i + 1];
            switch (args[i]) {
                case "--endpoint" -> endpoint = v;
                case "--topic" -> topic = v;
                case "--producers" -> producers = Integer.parseInt(v);
                case "--size" -> size = Integer.parseInt(v);
                case "--seconds" -> seconds = Integer.parseInt(v);
                case "--warmup" -> warmup = Integer.parseInt(v);
                case "--tls" -> tls = Boolean.parseBoolean(v);
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        ClientServiceProvider provider = ClientServiceProvider.loadService();
        ClientConfiguration conf = ClientConfiguration.newBuilder()
            .setEndpoints(endpoint)
            .enableSsl(tls)
            .setRequestTimeout(Duration.ofSeconds(10))
            .build();
        byte[] body = new byte[size];
        for (int i = 0; i < size; i++) {
            body[i] = (byte) ('a' + i % 26);
        }
        List<Producer> ps = new ArrayList<>();
        for (int i = 0; i < producers; i++) {
            ps.add(provider.newProducerBuilder().setClientConfiguration(conf).setTopics(topic)
                .setMaxAttempts(1).build());
        }

        long start = System.nanoTime();
        long measureFrom = start + warmup * 1_000_000_000L;
        long measureTo = measureFrom + seconds * 1_000_000_000L;
        Tally[] tallies = new Tally[producers];
        AtomicReference<String> firstError = new AtomicReference<>();
        Thread[] threads = new Thread[producers];
        Thread marker = new Thread(() -> {
            long wait = measureFrom - System.nanoTime();
            try {
                if (wait > 0) {
                    Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
                }
            } catch (InterruptedException e) {
                return;
            }
            System.out.println("PHASE measure");
            System.out.flush();
        });
        marker.setDaemon(true);
        marker.start();
        for (int i = 0; i < producers; i++) {
            Producer p = ps.get(i);
            Tally t = tallies[i] = new Tally();
            threads[i] = new Thread(() -> {
                while (true) {
                    long t0 = System.nanoTime();
                    if (t0 >= measureTo) {
                        break;
                    }
                    boolean measured = t0 >= measureFrom;
                    Message m = provider.newMessageBuilder().setTopic(topic).setBody(body).build();
                    String err = null;
                    try {
                        SendReceipt r = p.send(m);
                        if (r == null || r.getMessageId() == null) {
                            err = "no send receipt";
                        }
                    } catch (Exception e) {
                        err = e.toString();
                    }
                    long d = System.nanoTime() - t0;
                    if (!measured) {
                        t.warm++;
                        if (err != null) {
                            t.warmFailed++;
                        }
                        continue;
                    }
                    if (err != null) {
                        t.failed++;
                        firstError.compareAndSet(null, err);
                    } else {
                        t.add(d);
                    }
                    t.lastDoneNanos = t0 + d;
                }
            }, "producer-" + i);
            threads[i].start();
        }
        for (Thread th : threads) {
            th.join();
        }
        marker.join();
        System.out.println("PHASE done");
        System.out.flush();
        for (Producer p : ps) {
            p.close();
        }

        long end = measureFrom;
        long failed = 0, warm = 0, warmFailed = 0;
        int total = 0;
        for (Tally t : tallies) {
            total += t.n;
            failed += t.failed;
            warm += t.warm - t.warmFailed;
            warmFailed += t.warmFailed;
            end = Math.max(end, t.lastDoneNanos);
        }
        long[] all = new long[total];
        int k = 0;
        for (Tally t : tallies) {
            System.arraycopy(t.lat, 0, all, k, t.n);
            k += t.n;
        }
        Arrays.sort(all);
        double secs = (end - measureFrom) / 1e9;
        double rate = secs > 0 ? total / secs : 0;
        StringBuilder r = new StringBuilder("{");
        r.append("\"messages\":").append(total);
        r.append(",\"failed\":").append(failed);
        r.append(",\"seconds\":").append(secs);
        r.append(",\"msgs_per_sec\":").append(rate);
        r.append(",\"mb_per_sec\":").append(rate * size / 1e6);
        if (total > 0) {
            r.append(",\"p50_us\":").append(pct(all, 0.5));
            r.append(",\"p99_us\":").append(pct(all, 0.99));
            r.append(",\"p999_us\":").append(pct(all, 0.999));
            r.append(",\"max_us\":").append(pct(all, 1));
        }
        r.append(",\"producers\":").append(producers);
        // maxAttempts 1: each send is one attempt on the wire.
        r.append(",\"wire_attempts\":").append(total + failed);
        r.append(",\"wire_failed\":").append(failed);
        r.append(",\"warmup_messages\":").append(warm);
        r.append(",\"warmup_failed\":").append(warmFailed);
        if (firstError.get() != null) {
            r.append(",\"first_error\":\"").append(json(firstError.get())).append('"');
        }
        r.append('}');
        System.out.printf("messages=%d failed=%d elapsed=%.2fs throughput=%.0f msgs/s%n", total, failed, secs, rate);
        System.out.println("RESULT " + r);
        System.out.flush();
        // The client's non-daemon threads would otherwise keep the JVM up.
        System.exit(0);
    }

    /** Nearest rank, as the Go load generators compute it; microseconds. */
    static double pct(long[] sorted, double p) {
        return sorted[(int) ((sorted.length - 1) * p)] / 1e3;
    }

    static String json(String s) {
        StringBuilder b = new StringBuilder();
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20) {
                b.append(' ');
            } else {
                b.append(c);
            }
        }
        return b.length() > 300 ? b.substring(0, 300) : b.toString();
    }
}
