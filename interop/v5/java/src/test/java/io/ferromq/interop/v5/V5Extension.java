package io.ferromq.interop.v5;

import java.util.Optional;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestWatcher;

/**
 * Starts the target (once per JVM, {@link V5Target#get()}), creates the suite's topics and groups
 * (once), and prints the target's diagnostics when a test fails.
 */
public final class V5Extension implements BeforeAllCallback, TestWatcher {

    @Override
    public void beforeAll(ExtensionContext context) throws Exception {
        Resources.ensureCreated(V5Target.get());
    }

    @Override
    public void testFailed(ExtensionContext context, Throwable cause) {
        try {
            System.out.println("\n===== " + context.getDisplayName() + " failed: " + cause + "\n"
                + V5Target.get().diagnostics() + "\n===== end =====\n");
        } catch (Exception e) {
            System.out.println("no diagnostics: " + e);
        }
    }

    @Override
    public void testAborted(ExtensionContext context, Throwable cause) {
    }

    @Override
    public void testDisabled(ExtensionContext context, Optional<String> reason) {
    }
}
