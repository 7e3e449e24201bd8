package io.ferromq.apachetools;

import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.exception.MQClientException;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.remoting.RPCHook;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;

/** Apache client objects with unique instance names, their shut-down, and bounded waiting. */
public final class Clients implements AutoCloseable {

    private final String namesrv;
    /** Signs every request (ACL); null for none. */
    private final RPCHook hook;
    private final List<Runnable> shutdowns = Collections.synchronizedList(new ArrayList<>());

    public Clients(String namesrv) {
        this(namesrv, null);
    }

    /** Clients whose requests {@code hook} signs (an {@code AclClientRPCHook}), or none when null. */
    public Clients(String namesrv, RPCHook hook) {
        this.namesrv = namesrv;
        this.hook = hook;
    }

    /** A short random suffix for names (topics, groups, instance names). */
    public static String uid() {
        return UUID.randomUUID().toString().replace("-", "").substring(0, 10);
    }

    public DefaultMQAdminExt admin() throws MQClientException {
        DefaultMQAdminExt admin = new DefaultMQAdminExt(hook, 5_000);
        admin.setNamesrvAddr(namesrv);
        admin.setInstanceName("admin-" + uid());
        admin.start();
        shutdowns.add(admin::shutdown);
        return admin;
    }

    public DefaultMQProducer producer(String group) throws MQClientException {
        DefaultMQProducer p = new DefaultMQProducer(group, hook);
        configure(p, group);
        p.start();
        shutdowns.add(p::shutdown);
        return p;
    }

    /** Sets name server, a unique instance name and short timeouts on a not yet started producer. */
    public <P extends DefaultMQProducer> P configure(P p, String group) {
        p.setNamesrvAddr(namesrv);
        p.setInstanceName(group + "-" + uid());
        p.setSendMsgTimeout(5_000);
        p.setRetryTimesWhenSendFailed(0);
        return p;
    }

    /** Registers a client that was started elsewhere for shut-down in {@link #close()}. */
    public void onClose(Runnable r) {
        shutdowns.add(r);
    }

    /**
     * A push consumer of {@code group} on {@code topic} ("*"), from the first offset, committing
     * offsets every second. Not started.
     */
    public DefaultMQPushConsumer pushConsumer(String group, String topic, MessageListenerConcurrently listener)
        throws MQClientException {
        DefaultMQPushConsumer c = new DefaultMQPushConsumer(group, hook);
        c.setNamesrvAddr(namesrv);
        c.setInstanceName(group + "-" + uid());
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.setPersistConsumerOffsetInterval(1_000);
        // routes (e.g. of the %RETRY% topic the first heartbeat creates) every second, not 30 s
        c.setPollNameServerInterval(1_000);
        c.setConsumeThreadMin(2);
        c.setConsumeThreadMax(4);
        c.subscribe(topic, "*");
        c.registerMessageListener(listener);
        return c;
    }

    /** Starts it and shuts it down in {@link #close()}. */
    public DefaultMQPushConsumer start(DefaultMQPushConsumer c) throws MQClientException {
        c.start();
        shutdowns.add(c::shutdown);
        return c;
    }

    public static String clientId(DefaultMQPushConsumer c) {
        return c.getDefaultMQPushConsumerImpl().getmQClientFactory().getClientId();
    }

    public static String clientId(DefaultMQProducer p) {
        return p.getDefaultMQProducerImpl().getMqClientFactory().getClientId();
    }

    /**
     * Sends to one queue, retrying for up to 15 s while the name server has no route for a topic
     * that was created a moment ago.
     */
    public static SendResult sendWhenRouted(DefaultMQProducer p, Message m, MessageQueue mq) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
        // bounded by the deadline
        while (true) {
            try {
                return mq == null ? p.send(m) : p.send(m, mq);
            } catch (MQClientException e) {
                if (System.nanoTime() > deadline || !String.valueOf(e.getMessage()).contains("route")) {
                    throw e;
                }
                Thread.sleep(300);
            }
        }
    }

    /** A bounded poll: true once {@code check} returns true, false after {@code timeoutMs}. */
    public static boolean await(long timeoutMs, Supplier<Boolean> check) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        // bounded: at most timeoutMs / 200 iterations
        while (true) {
            try {
                if (Boolean.TRUE.equals(check.get())) {
                    return true;
                }
            } catch (RuntimeException ignored) {
                // not yet
            }
            if (System.nanoTime() > deadline) {
                return false;
            }
            Thread.sleep(200);
        }
    }

    /** As {@link #await} but fails the test with {@code what} when the time is up. */
    public static void awaitOrFail(String what, long timeoutMs, Supplier<Boolean> check) throws InterruptedException {
        if (!await(timeoutMs, check)) {
            fail("timed out after " + timeoutMs + " ms waiting for: " + what);
        }
    }

    /** Shuts every client down, the last started first. */
    @Override
    public void close() {
        List<Runnable> rev;
        synchronized (shutdowns) {
            rev = new ArrayList<>(shutdowns);
            shutdowns.clear();
        }
        Collections.reverse(rev);
        for (Runnable r : rev) {
            try {
                r.run();
            } catch (RuntimeException e) {
                System.err.println("client shutdown failed: " + e);
            }
        }
    }
}
