package io.ferromq.apachetools;

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
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * One {@code ferromq standalone} process (name server + broker in one) on free 127.0.0.1 ports,
 * with a temporary data directory and the given broker.conf. Everything it prints is kept so a
 * failing test can show it.
 *
 * <p>With {@code -Dtarget.namesrv=HOST:PORT -Dtarget.broker=HOST:PORT} no process is started and
 * the suite talks to that (already running) name server and broker instead, e.g. Apache's own,
 * to check that the assertions describe Apache's behaviour.
 */
public final class FerroMQServer implements AutoCloseable {

    static final String READY_PREFIX = "FerroMQ is ready";
    /** A debug build on a busy 2-core machine can be slow to come up. */
    static final long READY_TIMEOUT_MS = 30_000;
    /** The binary may be briefly missing while it is being rebuilt. */
    static final long BINARY_WAIT_MS = 90_000;
    private static final int MAX_KEPT_LINES = 50_000;
    private static final int START_ATTEMPTS = 3;

    private final Path binary;
    private final Path workDir;
    private final int namesrvPort;
    private final int brokerPort;
    private final String brokerConf;
    private final String externalNamesrv;
    private final String externalBroker;
    private final List<String> output = new ArrayList<>();
    private final CountDownLatch ready = new CountDownLatch(1);
    private final long startNanos = System.nanoTime();
    private Process process;
    private Thread stdoutPump;
    private Thread stderrPump;

    private FerroMQServer(Path binary, Path workDir, int namesrvPort, int brokerPort, String brokerConf,
                          String externalNamesrv, String externalBroker) {
        this.binary = binary;
        this.workDir = workDir;
        this.namesrvPort = namesrvPort;
        this.brokerPort = brokerPort;
        this.brokerConf = brokerConf;
        this.externalNamesrv = externalNamesrv;
        this.externalBroker = externalBroker;
    }

    /** Location of the binary: -DFERROMQ_BIN, env FERROMQ_BIN, else ../../target/debug/ferromq. */
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
            // surefire runs with user.dir = the module directory (interop/apache-tools)
            path = Paths.get(System.getProperty("user.dir")).resolve(path);
        }
        return path.normalize();
    }

    /** True when the suite runs against an already running name server and broker. */
    public static boolean external() {
        return external("target");
    }

    /** Whether {@code <prefix>.namesrv} names a running name server to test instead. */
    public static boolean external(String prefix) {
        String ns = System.getProperty(prefix + ".namesrv");
        return ns != null && !ns.isBlank();
    }

    /**
     * Starts FerroMQ with these broker.conf lines and waits for its ready line; or, with
     * -Dtarget.namesrv / -Dtarget.broker, only records those addresses.
     */
    public static FerroMQServer start(String brokerConf) throws IOException, InterruptedException {
        return start(brokerConf, "target");
    }

    /**
     * As {@link #start(String)}; the running servers to test instead are named by
     * {@code -D<prefix>.namesrv} and {@code -D<prefix>.broker}.
     */
    public static FerroMQServer start(String brokerConf, String prefix) throws IOException, InterruptedException {
        if (external(prefix)) {
            String ns = System.getProperty(prefix + ".namesrv").trim();
            String broker = System.getProperty(prefix + ".broker", "").trim();
            if (broker.isEmpty()) {
                throw new IllegalStateException("-D" + prefix + ".namesrv needs -D" + prefix
                    + ".broker (the broker's HOST:PORT)");
            }
            FerroMQServer s = new FerroMQServer(null, null, port(ns), port(broker), brokerConf, ns, broker);
            s.log("[harness] using the running name server " + ns + " and broker " + broker
                + " (no FerroMQ process is started)");
            return s;
        }
        Path bin = awaitBinary();
        IllegalStateException last = null;
        for (int attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
            int[] ports = choosePorts();
            Path dir = Files.createTempDirectory("ferromq-apache-tools-");
            FerroMQServer s = new FerroMQServer(bin, dir, ports[0], ports[1], brokerConf, null, null);
            try {
                s.launch();
                return s;
            } catch (IllegalStateException e) {
                boolean portTaken = s.exitedEarly() && s.output().toLowerCase().contains("in use");
                s.close();
                last = e;
                // a port picked a moment ago may have been taken since: try others
                if (!portTaken) {
                    throw e;
                }
                System.err.println("[harness] ferromq could not bind its ports (attempt " + attempt + "), retrying");
            } catch (IOException | InterruptedException | RuntimeException | Error e) {
                s.close();
                throw e;
            }
        }
        throw last;
    }

    private static int port(String hostPort) {
        return Integer.parseInt(hostPort.substring(hostPort.lastIndexOf(':') + 1));
    }

    private static Path awaitBinary() throws InterruptedException {
        Path bin = binaryPath();
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(BINARY_WAIT_MS);
        // bounded: at most BINARY_WAIT_MS / 500 iterations
        while (!Files.isExecutable(bin)) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("FerroMQ binary not found or not executable: " + bin
                    + " (waited " + BINARY_WAIT_MS / 1000 + " s; set -DFERROMQ_BIN=... or env FERROMQ_BIN)");
            }
            Thread.sleep(500);
        }
        return bin;
    }

    private void launch() throws IOException, InterruptedException {
        Path conf = workDir.resolve("broker.conf");
        Files.writeString(conf, brokerConf == null ? "" : brokerConf);
        Path dataDir = workDir.resolve("data");
        List<String> cmd = List.of(
            binary.toString(), "standalone",
            "--data-dir", dataDir.toString(),
            "--namesrv-listen", "127.0.0.1:" + namesrvPort,
            "--broker-listen", "127.0.0.1:" + brokerPort,
            "--no-dashboard",
            "-c", conf.toString());
        log("[harness] starting: " + String.join(" ", cmd));
        log("[harness] broker.conf: " + (brokerConf == null ? "" : brokerConf.trim().replace("\n", "; ")));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.directory(workDir.toFile());
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

    private boolean exitedEarly() {
        return process != null && !process.isAlive();
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
                // the process went away
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

    /** Number of lines kept so far; a mark for {@link #outputSince(int)}. */
    public int mark() {
        synchronized (output) {
            return output.size();
        }
    }

    /** Everything printed so far (plus harness notes). */
    public String output() {
        return outputSince(0);
    }

    /** What was printed since {@code mark}. */
    public String outputSince(int mark) {
        synchronized (output) {
            return String.join("\n", output.subList(Math.min(mark, output.size()), output.size()));
        }
    }

    /** The last {@code n} lines. */
    public String tail(int n) {
        synchronized (output) {
            return String.join("\n", output.subList(Math.max(0, output.size() - n), output.size()));
        }
    }

    /** Null while running (or when external), else a note on how it ended. */
    public String deathNote() {
        if (process == null || process.isAlive()) {
            return null;
        }
        return "ferromq is no longer running (exit code " + process.exitValue() + ")";
    }

    public boolean isExternal() {
        return externalNamesrv != null;
    }

    public String namesrvAddr() {
        return externalNamesrv != null ? externalNamesrv : "127.0.0.1:" + namesrvPort;
    }

    public String brokerAddr() {
        return externalBroker != null ? externalBroker : "127.0.0.1:" + brokerPort;
    }

    public int namesrvPort() {
        return namesrvPort;
    }

    public int brokerPort() {
        return brokerPort;
    }

    /** SIGTERM, up to 5 s, then SIGKILL, all through our own Process handle; removes the work dir. */
    @Override
    public void close() {
        if (process != null && process.isAlive()) {
            // ProcessHandle.destroy() sends SIGTERM without closing our ends of the pipes, so the
            // shutdown output is still captured.
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
                if (stdoutPump != null) {
                    stdoutPump.join(1000);
                }
                if (stderrPump != null) {
                    stderrPump.join(1000);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (!process.isAlive()) {
                log("[harness] ferromq exit code " + process.exitValue());
            }
        }
        deleteRecursively(workDir);
    }

    static void deleteRecursively(Path dir) {
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

    /**
     * A free name server port and a free broker port P such that P - 2 (FerroMQ's VIP channel,
     * as in Apache) and P + 1 are free as well. All sockets stay open until the choice is made.
     */
    static int[] choosePorts() throws IOException {
        InetAddress lo = InetAddress.getByName("127.0.0.1");
        List<ServerSocket> held = new ArrayList<>();
        try {
            ServerSocket ns = new ServerSocket(0, 1, lo);
            held.add(ns);
            // bounded: at most 100 candidates
            for (int i = 0; i < 100; i++) {
                ServerSocket b = new ServerSocket(0, 1, lo);
                held.add(b);
                int p = b.getLocalPort();
                if (p - 2 < 1024 || p + 1 > 65535) {
                    continue;
                }
                ServerSocket vip = tryBind(lo, p - 2);
                if (vip == null) {
                    continue;
                }
                held.add(vip);
                ServerSocket next = tryBind(lo, p + 1);
                if (next == null) {
                    continue;
                }
                held.add(next);
                int nsPort = ns.getLocalPort();
                if (nsPort >= p - 2 && nsPort <= p + 1) {
                    continue;
                }
                return new int[] {nsPort, p};
            }
            throw new IOException("found no broker port P with P-2 and P+1 free in 100 tries");
        } finally {
            for (ServerSocket s : held) {
                try {
                    s.close();
                } catch (IOException ignored) {
                    // closing
                }
            }
        }
    }

    private static ServerSocket tryBind(InetAddress lo, int port) {
        try {
            return new ServerSocket(port, 1, lo);
        } catch (IOException e) {
            return null;
        }
    }
}
