package io.ferromq.interop.v5;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * The server under test, one per test JVM: a gRPC endpoint (the v5 clients' only address) plus an
 * admin command that accepts mqadmin's arguments ({@code updateTopic}, {@code updateSubGroup}).
 *
 * <p>{@code TARGET=ferromq} (default): starts {@code $FERROMQ_BIN standalone --grpc-listen ...} on
 * free 127.0.0.1 ports; admin is {@code $FERROMQ_BIN admin ...}.
 *
 * <p>{@code TARGET=apache}: Apache RocketMQ 5.5.0 (name server + proxy in local mode) started by
 * {@code interop/v5/apache-local.sh start DIR}, admin is {@code DIR/mqadmin}. With
 * {@code V5_APACHE_STATE=DIR} an instance already started that way is used (and left running).
 */
public final class V5Target implements AutoCloseable {

    static final long FERROMQ_READY_TIMEOUT_MS = 30_000;
    static final long ADMIN_TIMEOUT_MS = 60_000;
    private static final int MAX_KEPT_LINES = 20_000;

    private static V5Target instance;

    /**
     * broker.conf lines for an Apache that this harness starts. Apache 5 writes the op
     * (commit/rollback) records of transactions in batches every transactionOpBatchInterval (3 s by
     * default). A check round that comes before a check-back's commit has its op record asks the
     * producer again, and the message is then delivered once per COMMIT. apache-local.sh checks
     * every 2 s. With 200 ms the op record is in place long before the next round
     * (NOTES-java-go.md).
     */
    static final String APACHE_BROKER_EXTRA = "transactionOpBatchInterval=200";

    public final String kind;          // "ferromq" or "apache"
    public final String grpcEndpoint;  // 127.0.0.1:port
    public final String namesrv;       // 127.0.0.1:port
    private final List<String> adminPrefix;
    private final Path batchAdmin;  // Apache's STATE_DIR/mqadmin-batch, else null
    private final Runnable stopper;
    private final List<String> output;  // FerroMQ's output (empty for Apache: see logsHint)
    private final String logsHint;

    private V5Target(String kind, String grpcEndpoint, String namesrv, List<String> adminPrefix,
                     Path batchAdmin, Runnable stopper, List<String> output, String logsHint) {
        this.kind = kind;
        this.grpcEndpoint = grpcEndpoint;
        this.namesrv = namesrv;
        this.adminPrefix = adminPrefix;
        this.batchAdmin = batchAdmin;
        this.stopper = stopper;
        this.output = output;
        this.logsHint = logsHint;
    }

    /** The target of this JVM, started on first use and stopped by a shutdown hook. */
    public static synchronized V5Target get() throws Exception {
        if (instance == null) {
            String t = env("TARGET", "ferromq").toLowerCase();
            V5Target started = switch (t) {
                case "apache" -> startApache();
                case "ferromq" -> startFerroMQ();
                default -> throw new IllegalArgumentException("TARGET must be ferromq or apache, not " + t);
            };
            Runtime.getRuntime().addShutdownHook(new Thread(started::close, "v5-target-stop"));
            instance = started;
            System.out.println("[harness] target " + started.kind + ": gRPC " + started.grpcEndpoint
                + ", name server " + started.namesrv);
        }
        return instance;
    }

    static String env(String key, String def) {
        String v = System.getProperty(key);
        if (v == null || v.isBlank()) {
            v = System.getenv(key);
        }
        return v == null || v.isBlank() ? def : v;
    }

    /** interop/v5 (surefire sets V5_INTEROP_DIR; else the parent of the working directory). */
    static Path interopDir() {
        String d = env("V5_INTEROP_DIR", null);
        Path p = d != null ? Paths.get(d) : Paths.get(System.getProperty("user.dir")).resolve("..");
        return p.toAbsolutePath().normalize();
    }

    // ------------------------------------------------------------------------------------------
    // Apache
    // ------------------------------------------------------------------------------------------

    private static V5Target startApache() throws Exception {
        String given = env("V5_APACHE_STATE", null);
        Path state;
        Runnable stopper;
        Path script = interopDir().resolve("apache-local.sh");
        if (given != null) {
            state = Paths.get(given).toAbsolutePath();
            stopper = () -> { };
        } else {
            state = Files.createTempDirectory("v5-apache-java-");
            List<String> cmd = List.of("bash", script.toString(), "start", state.toString());
            System.out.println("[harness] " + String.join(" ", cmd));
            ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
            pb.environment().merge("APACHE_BROKER_EXTRA", APACHE_BROKER_EXTRA, (a, b) -> a + "\\n" + b);
            Process p = pb.start();
            p.getOutputStream().close();
            String out = readAll(p.getInputStream());
            if (!p.waitFor(200, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IllegalStateException("apache-local.sh start did not finish in 200 s\n" + out);
            }
            if (p.exitValue() != 0) {
                runQuietly(List.of("bash", script.toString(), "stop", state.toString()));
                throw new IllegalStateException("apache-local.sh start failed (" + p.exitValue() + ")\n" + out);
            }
            final Path s = state;
            stopper = () -> {
                runQuietly(List.of("bash", script.toString(), "stop", s.toString()));
                deleteTree(s);
            };
        }
        Map<String, String> env = readEnvFile(state.resolve("env"));
        String grpc = env.get("GRPC");
        String ns = env.get("NAMESRV");
        if (grpc == null || ns == null) {
            stopper.run();
            throw new IllegalStateException(state.resolve("env") + " lacks GRPC or NAMESRV: " + env);
        }
        return new V5Target("apache", grpc, ns, List.of(state.resolve("mqadmin").toString()),
            state.resolve("mqadmin-batch"), stopper,
            new ArrayList<>(), "Apache logs: " + env.getOrDefault("LOGS", state.resolve("logs").toString()));
    }

    static Map<String, String> readEnvFile(Path f) throws IOException {
        Map<String, String> m = new HashMap<>();
        for (String line : Files.readAllLines(f)) {
            int eq = line.indexOf('=');
            if (eq <= 0 || line.startsWith("#")) {
                continue;
            }
            String v = line.substring(eq + 1).trim();
            if (v.length() >= 2 && v.startsWith("\"") && v.endsWith("\"")) {
                v = v.substring(1, v.length() - 1);
            }
            m.put(line.substring(0, eq).trim(), v);
        }
        return m;
    }

    // ------------------------------------------------------------------------------------------
    // FerroMQ
    // ------------------------------------------------------------------------------------------

    /** -DFERROMQ_BIN, env FERROMQ_BIN, else ../../../target/debug/ferromq (from interop/v5/java). */
    static Path ferromqBinary() {
        String p = env("FERROMQ_BIN", null);
        Path path = p != null ? Paths.get(p) : interopDir().resolve("../../target/debug/ferromq");
        if (!path.isAbsolute()) {
            path = Paths.get(System.getProperty("user.dir")).resolve(path);
        }
        return path.normalize();
    }

    private static V5Target startFerroMQ() throws Exception {
        Path bin = ferromqBinary();
        if (!Files.isExecutable(bin)) {
            throw new IllegalStateException("FerroMQ binary not found or not executable: " + bin
                + " (set FERROMQ_BIN, or TARGET=apache)");
        }
        int[] ports = freePorts(3);
        Path dir = Files.createTempDirectory("ferromq-v5-java-");
        List<String> cmd = List.of(bin.toString(), "standalone", "--data-dir", dir.toString(),
            "--namesrv-listen", "127.0.0.1:" + ports[0], "--broker-listen", "127.0.0.1:" + ports[1],
            "--grpc-listen", "127.0.0.1:" + ports[2], "--no-dashboard");
        List<String> output = new ArrayList<>();
        synchronized (output) {
            output.add("$ " + String.join(" ", cmd));
        }
        Process p = new ProcessBuilder(cmd).start();
        p.getOutputStream().close();
        pump(p.getInputStream(), output, "out");
        pump(p.getErrorStream(), output, "err");
        Runnable stopper = () -> {
            p.destroy();
            try {
                if (!p.waitFor(10, TimeUnit.SECONDS)) {
                    p.destroyForcibly();
                    p.waitFor(5, TimeUnit.SECONDS);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            deleteTree(dir);
        };
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(FERROMQ_READY_TIMEOUT_MS);
        while (true) { // bounded by the deadline
            if (!p.isAlive()) {
                Thread.sleep(200);
                stopper.run();
                throw new IllegalStateException("ferromq exited with " + p.exitValue() + " before its gRPC port "
                    + ports[2] + " accepted\n" + String.join("\n", snapshot(output)));
            }
            if (accepts(ports[2])) {
                break;
            }
            if (System.nanoTime() > deadline) {
                stopper.run();
                throw new IllegalStateException("ferromq's gRPC port " + ports[2] + " did not accept within "
                    + FERROMQ_READY_TIMEOUT_MS + " ms\n" + String.join("\n", snapshot(output)));
            }
            Thread.sleep(100);
        }
        return new V5Target("ferromq", "127.0.0.1:" + ports[2], "127.0.0.1:" + ports[0],
            List.of(bin.toString(), "admin"), null, stopper, output, "");
    }

    private static boolean accepts(int port) {
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress("127.0.0.1", port), 500);
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    private static void pump(InputStream in, List<String> sink, String tag) {
        Thread t = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    synchronized (sink) {
                        if (sink.size() < MAX_KEPT_LINES) {
                            sink.add("[" + tag + "] " + line);
                        }
                    }
                }
            } catch (IOException ignored) {
                // process went away
            }
        }, "ferromq-" + tag);
        t.setDaemon(true);
        t.start();
    }

    private static List<String> snapshot(List<String> l) {
        synchronized (l) {
            return new ArrayList<>(l);
        }
    }

    // ------------------------------------------------------------------------------------------
    // Admin
    // ------------------------------------------------------------------------------------------

    /** One admin invocation: mqadmin's arguments, e.g. updateTopic -n NS -c DefaultCluster -t T. */
    public record AdminCmd(List<String> args) {
    }

    public AdminCmd topic(String topic, String messageType) {
        return new AdminCmd(List.of("updateTopic", "-n", namesrv, "-c", "DefaultCluster", "-t", topic,
            "-a", "+message.type=" + messageType));
    }

    public AdminCmd group(String group, boolean orderly, int retryMaxTimes) {
        return new AdminCmd(List.of("updateSubGroup", "-n", namesrv, "-c", "DefaultCluster", "-g", group,
            "-o", Boolean.toString(orderly), "-r", Integer.toString(retryMaxTimes)));
    }

    /**
     * Runs the commands, failing on the first error. Apache: in one JVM through
     * {@code STATE_DIR/mqadmin-batch} when apache-local.sh made one; otherwise each command is its
     * own process, 10 at a time (an mqadmin JVM spends most of its ~5 s waiting).
     */
    public void admin(List<AdminCmd> cmds) throws Exception {
        boolean batch = batchAdmin != null && Files.isExecutable(batchAdmin);
        ExecutorService pool = Executors.newFixedThreadPool(10);
        try {
            List<Future<String>> fs = new ArrayList<>();
            if (batch) { // 3 JVMs, each running a third of the commands one after the other
                for (int k = 0; k < 3; k++) {
                    List<AdminCmd> part = new ArrayList<>();
                    for (int i = k; i < cmds.size(); i += 3) {
                        part.add(cmds.get(i));
                    }
                    if (!part.isEmpty()) {
                        fs.add(pool.submit(() -> runBatch(part)));
                    }
                }
            } else {
                for (AdminCmd c : cmds) {
                    fs.add(pool.submit(() -> runAdmin(c)));
                }
            }
            for (Future<String> f : fs) {
                f.get(ADMIN_TIMEOUT_MS + 5_000, TimeUnit.MILLISECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
    }

    private String runBatch(List<AdminCmd> cmds) throws Exception {
        StringBuilder in = new StringBuilder();
        for (AdminCmd c : cmds) {
            in.append(String.join(" ", c.args())).append('\n');
        }
        ProcessBuilder pb = new ProcessBuilder(batchAdmin.toString()).redirectErrorStream(true);
        pb.environment().put("JAVA_TOOL_OPTIONS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC");
        Process p = pb.start();
        p.getOutputStream().write(in.toString().getBytes(StandardCharsets.UTF_8));
        p.getOutputStream().close();
        String out = readAll(p.getInputStream());
        if (!p.waitFor(ADMIN_TIMEOUT_MS, TimeUnit.MILLISECONDS)) {
            p.destroyForcibly();
            throw new IllegalStateException("mqadmin-batch timed out\n" + out);
        }
        // mqadmin prints one "create ... to <broker> success." line per command (one broker here).
        int ok = 0;
        for (String line : out.split("\n")) {
            if (line.startsWith("create ") && line.trim().endsWith("success.")) {
                ok++;
            }
        }
        if (p.exitValue() != 0 || ok != cmds.size()) {
            throw new IllegalStateException("mqadmin-batch: " + ok + " of " + cmds.size()
                + " commands succeeded (exit " + p.exitValue() + ")\n" + out);
        }
        return out;
    }

    private String runAdmin(AdminCmd c) throws Exception {
        List<String> cmd = new ArrayList<>(adminPrefix);
        cmd.addAll(c.args());
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        if (kind.equals("apache")) {
            pb.environment().put("JAVA_TOOL_OPTIONS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC");
        }
        Process p = pb.start();
        p.getOutputStream().close();
        String out = readAll(p.getInputStream());
        if (!p.waitFor(ADMIN_TIMEOUT_MS, TimeUnit.MILLISECONDS)) {
            p.destroyForcibly();
            throw new IllegalStateException("admin command timed out: " + String.join(" ", cmd) + "\n" + out);
        }
        // mqadmin exits 0 even on some failures: its success line names the action.
        boolean ok = p.exitValue() == 0 && (out.contains("success") || kind.equals("ferromq"));
        if (!ok) {
            throw new IllegalStateException("admin command failed (exit " + p.exitValue() + "): "
                + String.join(" ", cmd) + "\n" + out);
        }
        return out;
    }

    /** Output for a failure report: FerroMQ's captured lines, or where Apache's logs are. */
    public String diagnostics() {
        if (!logsHint.isEmpty()) {
            return logsHint;
        }
        List<String> lines = snapshot(output);
        int from = Math.max(0, lines.size() - 400);
        return "last " + (lines.size() - from) + " FerroMQ output lines:\n"
            + String.join("\n", lines.subList(from, lines.size()));
    }

    @Override
    public void close() {
        stopper.run();
    }

    // ------------------------------------------------------------------------------------------

    static int[] freePorts(int n) throws IOException {
        int[] ports = new int[n];
        List<ServerSocket> open = new ArrayList<>();
        try {
            for (int i = 0; i < n; i++) {
                ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getByName("127.0.0.1"));
                open.add(s);
                ports[i] = s.getLocalPort();
            }
        } finally {
            for (ServerSocket s : open) {
                s.close();
            }
        }
        return ports;
    }

    private static String readAll(InputStream in) throws IOException {
        return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }

    private static void runQuietly(List<String> cmd) {
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            p.getOutputStream().close();
            readAll(p.getInputStream());
            if (!p.waitFor(60, TimeUnit.SECONDS)) {
                p.destroyForcibly();
            }
        } catch (IOException e) {
            System.err.println("[harness] " + String.join(" ", cmd) + ": " + e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).forEach(q -> q.toFile().delete());
        } catch (IOException ignored) {
            // best effort
        }
    }
}
