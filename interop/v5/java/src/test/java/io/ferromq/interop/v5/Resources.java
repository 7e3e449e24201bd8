package io.ferromq.interop.v5;

import java.util.ArrayList;
import java.util.List;

/**
 * Every topic and consumer group of the suite, named with a per-run suffix, created once (all at
 * once, before the first test class runs: each of Apache's mqadmin calls is a JVM start).
 * Every consumer group is created beforehand: Apache's proxy answers a consumer's settings
 * (telemetry) with INVALID_ARGUMENT "group not found" for a group that does not exist, even with
 * the broker's autoCreateSubscriptionGroup=true.
 */
final class Resources {
    static final String RUN = Long.toString(System.currentTimeMillis() % 2_000_000_000L, 36);

    static String name(String base) {
        return "v5j-" + base + "-" + RUN;
    }

    static final String TOPIC_NORMAL = name("normal");
    static final String TOPIC_FIFO = name("fifo");
    static final String TOPIC_FIFO_PUSH = name("fifo-push");
    static final String TOPIC_DELAY = name("delay");
    static final String TOPIC_TX = name("tx");
    static final String TOPIC_INVISIBLE = name("invisible");
    static final String TOPIC_DLQ = name("dlq");
    static final String TOPIC_PUSH = name("push");
    static final String TOPIC_TLS = name("tls");

    /** Plain groups (retryMaxTimes 16, Apache's default). */
    static final String GROUP_NORMAL = name("g-normal");
    static final String GROUP_DELAY = name("g-delay");
    static final String GROUP_TX = name("g-tx");
    static final String GROUP_PUSH = name("g-push");
    static final String GROUP_TLS = name("g-tls");
    static final String GROUP_DLQ_READER = name("g-dlq-reader");
    /** Orderly (FIFO) groups, retryMaxTimes 2. */
    static final String GROUP_FIFO = name("g-fifo");
    static final String GROUP_FIFO_PUSH = name("g-fifo-push");
    /** Plain groups with retryMaxTimes 2: at most 3 delivery attempts, then the DLQ. */
    static final String GROUP_INVISIBLE = name("g-invisible");
    static final String GROUP_DLQ = name("g-dlq");
    static final int RETRY_MAX_TIMES = 2;

    private static boolean created;

    static synchronized void ensureCreated(V5Target t) throws Exception {
        if (created) {
            return;
        }
        long start = System.nanoTime();
        List<V5Target.AdminCmd> cmds = new ArrayList<>();
        cmds.add(t.topic(TOPIC_NORMAL, "NORMAL"));
        cmds.add(t.topic(TOPIC_FIFO, "FIFO"));
        cmds.add(t.topic(TOPIC_FIFO_PUSH, "FIFO"));
        cmds.add(t.topic(TOPIC_DELAY, "DELAY"));
        cmds.add(t.topic(TOPIC_TX, "TRANSACTION"));
        cmds.add(t.topic(TOPIC_INVISIBLE, "NORMAL"));
        cmds.add(t.topic(TOPIC_DLQ, "NORMAL"));
        cmds.add(t.topic(TOPIC_PUSH, "NORMAL"));
        cmds.add(t.topic(TOPIC_TLS, "NORMAL"));
        for (String g : List.of(GROUP_NORMAL, GROUP_DELAY, GROUP_TX, GROUP_PUSH, GROUP_TLS, GROUP_DLQ_READER)) {
            cmds.add(t.group(g, false, 16));
        }
        cmds.add(t.group(GROUP_FIFO, true, RETRY_MAX_TIMES));
        cmds.add(t.group(GROUP_FIFO_PUSH, true, RETRY_MAX_TIMES));
        cmds.add(t.group(GROUP_INVISIBLE, false, RETRY_MAX_TIMES));
        cmds.add(t.group(GROUP_DLQ, false, RETRY_MAX_TIMES));
        t.admin(cmds);
        created = true;
        System.out.printf("[harness] %d topics and groups created in %d ms%n", cmds.size(),
            (System.nanoTime() - start) / 1_000_000);
    }

    private Resources() {
    }
}
