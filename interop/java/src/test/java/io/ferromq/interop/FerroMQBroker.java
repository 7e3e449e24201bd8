package io.ferromq.interop;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * Runs one {@code ferromq standalone} process (name server + broker) on free 127.0.0.1 ports with
 * a temporary data directory. Output (stdout + stderr) is kept in memory so it can be printed
 * when a test fails.
 */
public final class FerroMQBroker implements AutoCloseable {

    static final String READY_PREFIX = "FerroMQ is ready";
    static final long READY_TIMEOUT_MS = 20_000;
    private static final int MAX_KEPT_LINES = 20_000;

    private final Path binary;
    private final Path dataDir;
    private final int namesrvPort;
    private final int brokerPort;
    private final List<String> output = new ArrayList<>();
    private final CountDownLatch ready = new CountDownLatch(1);
    private final long startNanos = System.nanoTime();
    private Process process;
    private Thread stdoutPump;
    private Thread stderrPump;

    private final String brokerConf;

    private FerroMQBroker(Path binary, Path dataDir, int namesrvPort, int brokerPort, String brokerConf) {
        this.brokerConf = brokerConf;
        this.binary = binary;
        this.dataDir = dataDir;
        this.namesrvPort = namesrvPort;
        this.brokerPort = brokerPort;
    }

    /** Location of the broker binary: -DFERROMQ_BIN, env FERROMQ_BIN, else ../../target/debug/ferromq. */
    public static Path binaryPath() {
        String p = System.getProperty("FERROMQ_BIN");
        if (p == null || p.isBlank()) {
            p = System.getenv("FERROMQ_BIN");
        }
        if (p == null || p.isBlank()) {
            p = "../../target/debug/ferromq";
        }
        Path path = Paths.get(p);
        if (!path.isAbsolute()) {
            // surefire runs with user.dir = the module directory (interop/java)
            path = Paths.get(System.getProperty("user.dir")).resolve(path);
        }
        return path.normalize();
    }

    /** Starts the broker and waits (at most 20 s) until it prints the ready line. */
    public static FerroMQBroker start() throws IOException, InterruptedException {
        return start(null);
    }

    /** As {@link #start()}, with these broker.conf lines (null for none). */
    public static FerroMQBroker start(String brokerConf) throws IOException, InterruptedException {
        Path bin = binaryPath();
        if (!Files.isExecutable(bin)) {
            throw new IllegalStateException("FerroMQ binary not found or not executable: " + bin
                + " (set -DFERROMQ_BIN=... or env FERROMQ_BIN)");
        }
        int[] ports = freePorts(2);
        Path dir = Files.createTempDirectory("ferromq-java-it-");
        FerroMQBroker b = new FerroMQBroker(bin, dir, ports[0], ports[1], brokerConf);
        try {
            b.launch();
        } catch (IOException | InterruptedException | RuntimeException | Error e) {
            b.close();
            throw e;
        }
        return b;
    }

    private void launch() throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(
            binary.toString(), "standalone",
            "--data-dir", dataDir.toString(),
            "--namesrv-listen", "127.0.0.1:" + namesrvPort,
            "--broker-listen", "127.0.0.1:" + brokerPort,
            "--no-dashboard"));
        if (brokerConf != null) {
            Path conf = Files.createTempFile("ferromq-broker-", ".conf");
            Files.writeString(conf, brokerConf);
            cmd.add("-c");
            cmd.add(conf.toString());
        }
        log("[harness] starting: " + String.join(" ", cmd));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.redirectInput(ProcessBuilder.Redirect.PIPE);
        process = pb.start();
        process.getOutputStream().close();
        stdoutPump = pump(process.getInputStream(), "out", true);
        stderrPump = pump(process.getErrorStream(), "err", false);

        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(READY_TIMEOUT_MS);
        // bounded: at most READY_TIMEOUT_MS / 100 iterations
        while (!ready.await(100, TimeUnit.MILLISECONDS)) {
            if (!process.isAlive()) {
                stdoutPump.join(1000);
                stderrPump.join(1000);
                throw new IllegalStateException("ferromq exited with code " + process.exitValue()
                    + " before printing '" + READY_PREFIX + "'\n" + output());
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("ferromq did not print '" + READY_PREFIX + "' within "
                    + READY_TIMEOUT_MS + " ms\n" + output());
            }
        }
        log("[harness] ready after " + elapsedMs() + " ms");
    }

    private Thread pump(InputStream in, String tag, boolean watchReady) {
        Thread t = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    log("[" + tag + " +" + elapsedMs() + "ms] " + line);
                    if (watchReady && line.startsWith(READY_PREFIX)) {
                        ready.countDown();
                    }
                }
            } catch (IOException ignored) {
                // process went away
            }
        }, "ferromq-" + tag + "-" + brokerPort);
        t.setDaemon(true);
        t.start();
        return t;
    }

    private long elapsedMs() {
        return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - startNanos);
    }

    void log(String line) {
        synchronized (output) {
            if (output.size() < MAX_KEPT_LINES) {
                output.add(line);
            } else if (output.size() == MAX_KEPT_LINES) {
                output.add("[harness] ... further output dropped");
            }
        }
    }

    /** Everything the broker printed so far (plus harness notes). */
    public String output() {
        synchronized (output) {
            return String.join("\n", output);
        }
    }

    public String namesrvAddr() {
        return "127.0.0.1:" + namesrvPort;
    }

    public String brokerAddr() {
        return "127.0.0.1:" + brokerPort;
    }

    public int brokerPort() {
        return brokerPort;
    }

    public Path dataDir() {
        return dataDir;
    }

    /**
     * Runs {@code ferromq admin -n <this name server> <args>} and returns what it printed
     * (stdout and stderr); a non-zero exit or a run over 30 s fails with that output.
     */
    public String admin(String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(binary.toString(), "admin", "-n", namesrvAddr()));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        p.getOutputStream().close();
        // read on its own thread so a full pipe cannot stall the command past its deadline
        CompletableFuture<String> out = CompletableFuture.supplyAsync(() -> {
            try {
                return new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            } catch (IOException e) {
                return "(output unreadable: " + e + ")";
            }
        });
        if (!p.waitFor(30, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IllegalStateException(String.join(" ", cmd) + " ran over 30 s");
        }
        String text = out.join();
        if (p.exitValue() != 0) {
            throw new IllegalStateException(String.join(" ", cmd) + " exited " + p.exitValue() + ":\n" + text);
        }
        return text;
    }

    /** SIGTERM, wait up to 5 s, then SIGKILL (destroyForcibly); removes the data directory. */
    @Override
    public void close() {
        if (process != null && process.isAlive()) {
            // SIGTERM through the ProcessHandle: unlike Process.destroy() it does not close our
            // ends of the stdout/stderr pipes, so the broker's shutdown output is still captured
            // and it does not hit EPIPE while logging its shutdown.
            if (!process.toHandle().destroy()) {
                process.destroy();
            }
            try {
                if (!process.waitFor(5, TimeUnit.SECONDS)) {
                    log("[harness] no exit 5 s after SIGTERM; killing");
                    process.destroyForcibly();
                    process.waitFor(5, TimeUnit.SECONDS);
                }
            } catch (InterruptedException e) {
                process.destroyForcibly();
                Thread.currentThread().interrupt();
            }
        }
        if (process != null) {
            try {
                if (stdoutPump != null) stdoutPump.join(1000);
                if (stderrPump != null) stderrPump.join(1000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (!process.isAlive()) {
                log("[harness] ferromq exit code " + process.exitValue());
            }
        }
        deleteRecursively(dataDir);
    }

    private static void deleteRecursively(Path dir) {
        if (dir == null || !Files.exists(dir)) {
            return;
        }
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException ignored) {
                    // best effort
                }
            });
        } catch (IOException ignored) {
            // best effort
        }
    }

    /** Distinct free TCP ports on 127.0.0.1 (all sockets held open until all are chosen). */
    static int[] freePorts(int n) throws IOException {
        InetAddress lo = InetAddress.getByName("127.0.0.1");
        List<ServerSocket> sockets = new ArrayList<>();
        try {
            int[] ports = new int[n];
            for (int i = 0; i < n; i++) {
                ServerSocket s = new ServerSocket(0, 1, lo);
                s.setReuseAddress(true);
                sockets.add(s);
                ports[i] = s.getLocalPort();
            }
            return ports;
        } finally {
            for (ServerSocket s : sockets) {
                s.close();
            }
        }
    }
}
