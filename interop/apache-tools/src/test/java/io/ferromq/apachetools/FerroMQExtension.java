package io.ferromq.apachetools;

import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestWatcher;

/**
 * One FerroMQ process per test class: register it as a {@code static} field with
 * {@code @RegisterExtension}. It starts before the class's {@code @BeforeAll} methods and stops
 * after its {@code @AfterAll} methods (so clients shut down while the broker still runs). For a
 * failed test it prints what FerroMQ logged while that test ran; when the class set-up or
 * tear-down failed it prints everything.
 */
public final class FerroMQExtension implements BeforeAllCallback, AfterAllCallback, BeforeEachCallback, TestWatcher {

    /** Apache's e2e broker settings. */
    public static final String E2E_BROKER_CONF = String.join("\n",
        "brokerClusterName=DefaultCluster",
        "brokerName=broker-a",
        "autoCreateTopicEnable=false",
        "enablePropertyFilter=true",
        "flushDiskType=SYNC_FLUSH",
        "maxMessageSize=5242880",
        "");

    private final String brokerConf;
    /** The system-property prefix naming running servers to test instead (see FerroMQServer). */
    private final String externalPrefix;
    private final Map<String, Integer> marks = new ConcurrentHashMap<>();
    private volatile FerroMQServer server;

    public FerroMQExtension() {
        this(E2E_BROKER_CONF);
    }

    public FerroMQExtension(String brokerConf) {
        this(brokerConf, "target");
    }

    /**
     * With settings a shared Apache broker cannot have (ACL 2.0): when the suite runs against
     * running servers ({@code -Dtarget.namesrv}), this class needs its own, named by
     * {@code -D<externalPrefix>.namesrv} and {@code .broker}, and is skipped without them.
     */
    public FerroMQExtension(String brokerConf, String externalPrefix) {
        this.brokerConf = brokerConf;
        this.externalPrefix = externalPrefix;
    }

    public FerroMQServer server() {
        FerroMQServer s = server;
        if (s == null) {
            throw new IllegalStateException("FerroMQ not started");
        }
        return s;
    }

    @Override
    public void beforeAll(ExtensionContext context) throws Exception {
        Assumptions.assumeFalse(Boolean.getBoolean("apache.compare"),
            "-Dapache.compare=true is reserved for a side-by-side run against Apache; not implemented yet");
        Assumptions.assumeTrue(!FerroMQServer.external() || FerroMQServer.external(externalPrefix),
            "running against external servers without -D" + externalPrefix + ".namesrv");
        server = FerroMQServer.start(brokerConf, externalPrefix);
    }

    @Override
    public void beforeEach(ExtensionContext context) {
        FerroMQServer s = server;
        if (s != null) {
            marks.put(context.getUniqueId(), s.mark());
            s.log("[harness] ===== test " + context.getDisplayName() + " starts =====");
        }
    }

    @Override
    public void testFailed(ExtensionContext context, Throwable cause) {
        FerroMQServer s = server;
        if (s == null || s.isExternal()) {
            return;
        }
        int mark = marks.getOrDefault(context.getUniqueId(), 0);
        String during = s.outputSince(mark);
        StringBuilder b = new StringBuilder();
        b.append("\n===== FerroMQ output while ").append(context.getDisplayName()).append(" ran (namesrv ")
            .append(s.namesrvAddr()).append(", broker ").append(s.brokerAddr()).append(") =====\n");
        // FerroMQ logs little per request: with nothing from this test, show what came last
        b.append(during.lines().count() <= 1 ? s.tail(150) : during).append('\n');
        String dead = s.deathNote();
        if (dead != null) {
            b.append("[harness] ").append(dead).append('\n');
        }
        b.append("===== end of FerroMQ output =====\n");
        System.out.println(b);
    }

    @Override
    public void afterAll(ExtensionContext context) {
        FerroMQServer s = server;
        server = null;
        if (s == null) {
            return;
        }
        s.close();
        Optional<Throwable> failure = context.getExecutionException();
        if (failure.isPresent() && !s.isExternal()) {
            System.out.println("\n===== FerroMQ output for " + context.getDisplayName()
                + " (class set-up or tear-down failed: " + failure.get() + ") =====\n"
                + s.output() + "\n===== end of FerroMQ output =====\n");
        }
    }
}
