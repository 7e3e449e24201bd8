package io.ferromq.interop;

import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * JUnit 5 extension: a fresh FerroMQ process per test. Runs before any {@code @BeforeEach} and
 * after every {@code @AfterEach} of the test class, so clients are shut down before the broker
 * is stopped. The broker's output is printed only when the test failed.
 */
public final class BrokerExtension implements BeforeEachCallback, AfterEachCallback {

    private FerroMQBroker broker;

    public FerroMQBroker broker() {
        if (broker == null) {
            throw new IllegalStateException("broker not started");
        }
        return broker;
    }

    @Override
    public void beforeEach(ExtensionContext context) throws Exception {
        broker = FerroMQBroker.start();
    }

    @Override
    public void afterEach(ExtensionContext context) {
        FerroMQBroker b = broker;
        broker = null;
        if (b == null) {
            return;
        }
        b.close();
        if (context.getExecutionException().isPresent()) {
            System.out.println("\n===== FerroMQ output for failed test " + context.getDisplayName()
                + " (namesrv " + b.namesrvAddr() + ", broker " + b.brokerAddr() + ") =====\n"
                + b.output()
                + "\n===== end of FerroMQ output =====\n");
        }
    }
}
