package io.ferromq.apachetools;

import static org.junit.jupiter.api.Assertions.fail;

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
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Deque;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * The child processes of one test (FerroMQ name servers, controllers and brokers, Apache brokers
 * as child JVMs on this JVM's class path), every one on 127.0.0.1, in one temporary work
 * directory, on ports no other process of the test was given.
 *
 * <p>Each process's last lines are kept; {@link #diagnoseOnFailure} prints them (and Apache's
 * logs) when the test body fails. {@code -D<tag>.showOutput=true} prints them after a passing
 * body as well; {@code -D<tag>.keepWork=true} keeps the work directory. A process can be
 * SIGKILLed and started again, or paused (SIGSTOP) and resumed (SIGCONT). {@link #close()} stops
 * every process, the last started first, through its own {@link Process} handle.
 */
final class ChildProcesses implements AutoCloseable {

    static final String FERRO_READY = FerroMQServer.READY_PREFIX;
    static final String APACHE_READY = "boot success";
    static final long FERRO_READY_MS = 30_000;
    static final long APACHE_READY_MS = 120_000;

    /** The prefix of this test's console lines, thread names and -D options, e.g. "ha". */
    private final String tag;
    /** The test's name, which heads its diagnostics. */
    private final String title;
    private final Path work;
    private final List<Proc> procs = new ArrayList<>();
    private final Set<Integer> usedPorts = new HashSet<>();
    private final List<Path> apacheHomes = new ArrayList<>();

    ChildProcesses(String tag, String title) throws IOException {
        this.tag = tag;
        this.title = title;
        this.work = Files.createTempDirectory("ferromq-" + tag + "-");
    }

    Path work() {
        return work;
    }

    /** The ROCKETMQ_HOME of every Apache broker started so far (logs under logs/rocketmqlogs). */
    List<Path> apacheHomes() {
        return Collections.unmodifiableList(apacheHomes);
    }

    // ------------------------------------------------------------------ starting

    /** A FerroMQ name server on a free port; returns its address once it is ready. */
    String startNamesrv() throws Exception {
        int port = freePort();
        Path bin = FerroMQServer.binaryPath();
        Proc p = start("namesrv", List.of(bin.toString(), "namesrv", "--listen", "127.0.0.1:" + port),
            Map.of(), work, FERRO_READY);
        p.awaitReady(FERRO_READY_MS);
        return "127.0.0.1:" + port;
    }

    /** A one-node FerroMQ controller on a free port; returns its address once it is ready. */
    String startController() throws Exception {
        int port = freePort();
        Path store = Files.createDirectories(work.resolve("controller"));
        String conf = String.join("\n",
            "controllerDLegerPeers=n0-127.0.0.1:" + port,
            "controllerDLegerSelfId=n0",
            "controllerStorePath=" + store,
            "scanInactiveMasterInterval=500",
            "");
        Path confFile = work.resolve("controller.conf");
        Files.writeString(confFile, conf);
        Path bin = FerroMQServer.binaryPath();
        Proc p = start("controller", List.of(bin.toString(), "controller", "-c", confFile.toString()),
            Map.of(), work, FERRO_READY);
        p.log("[harness] controller.conf: " + conf.trim().replace("\n", "; "));
        p.awaitReady(FERRO_READY_MS);
        return "127.0.0.1:" + port;
    }

    /** A FerroMQ broker with these broker.conf lines, listening on {@code port}; waits until it is ready. */
    Proc startFerroBroker(String name, Path dataDir, int port, String conf) throws Exception {
        Path confFile = work.resolve(name + ".conf");
        Files.writeString(confFile, conf);
        Path bin = FerroMQServer.binaryPath();
        Proc p = start(name, List.of(bin.toString(), "broker", "-c", confFile.toString(),
                "--data-dir", dataDir.toString(), "--listen", "127.0.0.1:" + port),
            Map.of(), work, FERRO_READY);
        p.log("[harness] broker.conf: " + conf.trim().replace("\n", "; "));
        p.awaitReady(FERRO_READY_MS);
        return p;
    }

    /**
     * Apache's broker ({@code BrokerStartup}) as a child JVM with these broker.conf lines and its
     * own ROCKETMQ_HOME and user.home (so its logs stay in the work directory); does not wait.
     */
    Proc launchApacheBroker(String name, String conf) throws Exception {
        Path home = Files.createDirectories(work.resolve(name + "-home"));
        apacheHomes.add(home);
        Path confFile = work.resolve(name + ".conf");
        Files.writeString(confFile, conf);
        List<String> cmd = List.of(
            Paths.get(System.getProperty("java.home"), "bin", "java").toString(),
            "-Xmx512m",
            "-Duser.home=" + home,
            "-cp", System.getProperty("java.class.path"),
            "org.apache.rocketmq.broker.BrokerStartup",
            "-c", confFile.toString());
        Proc p = start(name, cmd, Map.of("ROCKETMQ_HOME", home.toString()), home, APACHE_READY);
        p.log("[harness] broker.conf: " + conf.trim().replace("\n", "; "));
        return p;
    }

    private Proc start(String name, List<String> cmd, Map<String, String> env, Path dir, String ready)
        throws IOException {
        Proc p = new Proc(tag, name, cmd, env, dir, ready);
        procs.add(p);
        p.launch();
        return p;
    }

    // ------------------------------------------------------------------ diagnostics

    @FunctionalInterface
    interface Body {
        void run() throws Exception;
    }

    /** Runs the test body; on failure prints every process's output and Apache's logs, then rethrows. */
    void diagnoseOnFailure(Body body) throws Throwable {
        try {
            body.run();
            if (Boolean.getBoolean(tag + ".showOutput")) {
                System.out.println(diagnostics("-D" + tag + ".showOutput=true"));
            }
        } catch (Throwable t) {
            System.out.println(diagnostics(title + " failed: " + t));
            throw t;
        }
    }

    private String diagnostics(String heading) {
        StringBuilder b = new StringBuilder("\n===== " + heading + " =====\n");
        for (Proc p : procs) {
            b.append("----- ").append(p.name).append(" (").append(p.state()).append("), last lines -----\n")
                .append(p.tail()).append('\n');
        }
        for (Path home : apacheHomes) {
            Path logs = home.resolve("logs").resolve("rocketmqlogs");
            for (String f : List.of("broker.log", "store.log", "broker_default.log")) {
                Path log = logs.resolve(f);
                if (Files.isRegularFile(log)) {
                    b.append("----- ").append(log).append(", last 80 lines -----\n")
                        .append(tailOf(log, 80)).append('\n');
                }
            }
        }
        b.append("===== end of ").append(title).append(" diagnostics =====\n");
        return b.toString();
    }

    static String tailOf(Path file, int n) {
        try {
            List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - n), lines.size()));
        } catch (IOException e) {
            return "(cannot read: " + e + ")";
        }
    }

    // ------------------------------------------------------------------ ports

    /** A free 127.0.0.1 port, distinct from every port this test chose before. */
    int freePort() throws IOException {
        InetAddress lo = InetAddress.getByName("127.0.0.1");
        // bounded: at most 100 candidates
        for (int i = 0; i < 100; i++) {
            int p;
            try (ServerSocket s = new ServerSocket(0, 1, lo)) {
                p = s.getLocalPort();
            }
            if (usedPorts.add(p)) {
                return p;
            }
        }
        throw new IOException("no free port found in 100 tries");
    }

    /** A free broker port P with P - 2 (VIP channel) and P + 1 (default HA port) free as well. */
    int brokerPort() throws IOException {
        InetAddress lo = InetAddress.getByName("127.0.0.1");
        // bounded: at most 100 candidates
        for (int i = 0; i < 100; i++) {
            try (ServerSocket s = new ServerSocket(0, 1, lo)) {
                int p = s.getLocalPort();
                if (p - 2 < 1024 || p + 1 > 65535 || usedPorts.contains(p) || usedPorts.contains(p - 2)
                    || usedPorts.contains(p + 1) || !bindable(lo, p - 2) || !bindable(lo, p + 1)) {
                    continue;
                }
                usedPorts.add(p);
                usedPorts.add(p - 2);
                usedPorts.add(p + 1);
                return p;
            }
        }
        throw new IOException("found no broker port P with P-2 and P+1 free in 100 tries");
    }

    private static boolean bindable(InetAddress lo, int port) {
        try (ServerSocket s = new ServerSocket(port, 1, lo)) {
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    /** Fails the test naming every process whose current run exited without the test stopping it. */
    void assertNoneCrashed(String when) {
        List<String> crashed = new ArrayList<>();
        for (Proc p : procs) {
            if (p.crashed()) {
                crashed.add(p.name + " (" + p.state() + ")");
            }
        }
        if (!crashed.isEmpty()) {
            fail(when + ": exited on their own: " + crashed);
        }
    }

    // ------------------------------------------------------------------ stopping

    /** Stops every process, the last started first; removes the work directory unless -D<tag>.keepWork=true. */
    @Override
    public void close() {
        List<Proc> rev = new ArrayList<>(procs);
        Collections.reverse(rev);
        for (Proc p : rev) {
            p.close();
        }
        procs.clear();
        if (Boolean.getBoolean(tag + ".keepWork")) {
            System.out.println("[" + tag + "] -D" + tag + ".keepWork=true: kept " + work);
        } else {
            FerroMQServer.deleteRecursively(work);
        }
    }

    /**
     * One child process, which can be killed and started again with the same command; keeps the
     * last lines its runs printed; stopped only through its own handle.
     */
    static final class Proc implements AutoCloseable {
        private static final int KEPT = 400;

        final String name;
        private final String tag;
        private final List<String> cmd;
        private final Map<String, String> env;
        private final Path dir;
        private final String readyMarker;
        private final Deque<String> lines = new ArrayDeque<>();
        /** Output lines are stamped with the time since the first run started, one timeline for all runs. */
        private final long startNanos = System.nanoTime();
        private final List<Thread> pumps = new ArrayList<>();
        private volatile long runStartNanos;
        private volatile CountDownLatch ready;
        private volatile Process process;
        private volatile boolean killedByTest;
        /** Stopped with SIGSTOP by {@link #pause()} and not yet resumed. */
        private volatile boolean paused;
        private int runs;

        private Proc(String tag, String name, List<String> cmd, Map<String, String> env, Path dir, String readyMarker) {
            this.tag = tag;
            this.name = name;
            this.cmd = List.copyOf(cmd);
            this.env = Map.copyOf(env);
            this.dir = dir;
            this.readyMarker = readyMarker;
        }

        private void launch() throws IOException {
            runs++;
            log("[harness] run " + runs + ", starting: "
                + String.join(" ", cmd).replaceAll("-cp \\S+", "-cp <test class path>"));
            ProcessBuilder pb = new ProcessBuilder(cmd);
            pb.directory(dir.toFile());
            pb.environment().putAll(env);
            pb.redirectInput(ProcessBuilder.Redirect.PIPE);
            ready = new CountDownLatch(1);
            runStartNanos = System.nanoTime();
            killedByTest = false;
            process = pb.start();
            process.getOutputStream().close();
            pumps.add(pump(process.getInputStream(), "out", ready));
            pumps.add(pump(process.getErrorStream(), "err", ready));
        }

        private Thread pump(InputStream in, String stream, CountDownLatch runReady) {
            Thread t = new Thread(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
                    String line;
                    while ((line = r.readLine()) != null) {
                        log("[" + stream + " +" + elapsedMs() + "ms] " + line);
                        if (stream.equals("out") && line.contains(readyMarker)) {
                            runReady.countDown();
                        }
                    }
                } catch (IOException ignored) {
                    // the process went away
                }
            }, tag + "-" + name + "-" + stream + "-" + runs);
            t.setDaemon(true);
            t.start();
            return t;
        }

        /** Waits for the ready line of the current run; fails the test if it exits or times out first. */
        void awaitReady(long timeoutMs) throws InterruptedException {
            if (!readyOrExited(timeoutMs)) {
                fail(name + " exited with code " + process.exitValue() + " before printing '" + readyMarker
                    + "'\n" + tail());
            }
        }

        /**
         * Starts the process again with the same command (after {@link #kill()}) and waits for
         * its ready line. A run that exits before it is ready is started again, up to
         * {@code attempts} runs in all: its ports may not be free yet so soon after the kill.
         */
        void restart(long timeoutMs, int attempts) throws IOException, InterruptedException {
            // bounded: at most attempts runs
            for (int attempt = 1; ; attempt++) {
                launch();
                if (readyOrExited(timeoutMs)) {
                    return;
                }
                if (attempt == attempts) {
                    fail(name + " exited " + attempts + " times before printing '" + readyMarker
                        + "', the last time with code " + process.exitValue() + "\n" + tail());
                }
                log("[harness] run " + runs + " exited with code " + process.exitValue() + "; starting again");
                Thread.sleep(1_000);
            }
        }

        /** True once the current run printed its ready line, false if it exited first; fails on timeout. */
        private boolean readyOrExited(long timeoutMs) throws InterruptedException {
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
            // bounded: at most timeoutMs / 100 iterations
            while (!ready.await(100, TimeUnit.MILLISECONDS)) {
                if (!process.isAlive()) {
                    joinPumps();
                    return false;
                }
                if (System.nanoTime() > deadline) {
                    fail(name + " did not print '" + readyMarker + "' within " + timeoutMs + " ms\n" + tail());
                }
            }
            long readyMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - runStartNanos);
            log("[harness] ready after " + readyMs + " ms");
            System.out.printf("[%s] %s ready after %d ms%n", tag, name, readyMs);
            return true;
        }

        /** SIGKILL through our own handle; waits up to 10 s for the exit. */
        void kill() throws InterruptedException {
            log("[harness] SIGKILL pid " + process.pid());
            killedByTest = true;
            paused = false;
            process.destroyForcibly();
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                fail(name + " (pid " + process.pid() + ") still running 10 s after SIGKILL");
            }
            System.out.printf("[%s] %s (pid %d) killed%n", tag, name, process.pid());
        }

        /**
         * SIGSTOP to the current run (our own child, by its pid): it stays alive with its
         * connections open but answers nothing, as a process stalled by a long GC pause, a
         * frozen VM or a swap storm would. Returns once every thread of it is stopped, with the
         * {@link System#nanoTime()} it saw that. {@link #resume()} continues it; {@link #close()}
         * continues a paused process before stopping it.
         */
        long pause() throws IOException, InterruptedException {
            long sentAt = System.nanoTime();
            signal("STOP");
            paused = true;
            // kill(1) returns once the signal is sent: wait until every thread is stopped, so that
            // whatever the test does next happens to a stopped process
            long pid = process.pid();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            // bounded by the deadline
            while (!allThreadsStopped(pid)) {
                if (System.nanoTime() > deadline) {
                    fail(name + " (pid " + pid + ") not stopped 5 s after SIGSTOP");
                }
                Thread.sleep(2);
            }
            long stoppedAt = System.nanoTime();
            log("[harness] stopped " + TimeUnit.NANOSECONDS.toMillis(stoppedAt - sentAt) + " ms after running kill -STOP");
            System.out.printf("[%s] %s (pid %d) paused (SIGSTOP), every thread stopped %d ms after running kill%n", tag,
                name, pid, TimeUnit.NANOSECONDS.toMillis(stoppedAt - sentAt));
            return stoppedAt;
        }

        /** SIGCONT to the current run, after {@link #pause()}. */
        void resume() throws IOException, InterruptedException {
            signal("CONT");
            paused = false;
            System.out.printf("[%s] %s (pid %d) resumed (SIGCONT)%n", tag, name, process.pid());
        }

        /** Every thread of pid in state T (stopped) per /proc/pid/task/N/stat; true where there is no /proc. */
        private static boolean allThreadsStopped(long pid) {
            Path tasks = Paths.get("/proc", Long.toString(pid), "task");
            if (!Files.isDirectory(Paths.get("/proc", "self"))) {
                return true;
            }
            try (var dirs = Files.list(tasks)) {
                for (Path t : (Iterable<Path>) dirs::iterator) {
                    String stat = Files.readString(t.resolve("stat"));
                    // "pid (comm) S ...": the state follows the last ')'
                    String rest = stat.substring(stat.lastIndexOf(')') + 1).trim();
                    if (!rest.startsWith("T")) {
                        return false;
                    }
                }
                return true;
            } catch (IOException e) {
                return false;
            }
        }

        /** {@code kill -<sig> <pid>} of the current run, which must be alive; fails the test if kill fails. */
        private void signal(String sig) throws IOException, InterruptedException {
            if (process == null || !process.isAlive()) {
                fail("SIG" + sig + " to " + name + ": not running (" + state() + ")");
            }
            long pid = process.pid();
            log("[harness] SIG" + sig + " pid " + pid);
            Process k = new ProcessBuilder("kill", "-" + sig, Long.toString(pid)).redirectErrorStream(true).start();
            k.getOutputStream().close();
            if (!k.waitFor(10, TimeUnit.SECONDS)) {
                k.destroyForcibly();
                fail("kill -" + sig + " " + pid + " did not finish within 10 s");
            }
            String out = new String(k.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
            if (k.exitValue() != 0) {
                fail("kill -" + sig + " " + pid + " (" + name + ") exited with " + k.exitValue() + ": " + out);
            }
        }

        boolean isAlive() {
            return process != null && process.isAlive();
        }

        /** The current run exited, and not because {@link #kill()} killed it. */
        boolean crashed() {
            return process != null && !process.isAlive() && !killedByTest;
        }

        private long elapsedMs() {
            return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - startNanos);
        }

        void log(String line) {
            synchronized (lines) {
                lines.addLast(line);
                if (lines.size() > KEPT) {
                    lines.removeFirst();
                }
            }
        }

        String tail() {
            synchronized (lines) {
                return String.join("\n", lines);
            }
        }

        String state() {
            if (process == null) {
                return "not started";
            }
            if (process.isAlive()) {
                return (paused ? "paused (SIGSTOP), pid " : "running, pid ") + process.pid();
            }
            return "exited with code " + process.exitValue();
        }

        private void joinPumps() throws InterruptedException {
            for (Thread t : pumps) {
                t.join(1000);
            }
        }

        /** SIGTERM through our own handle, up to 15 s, then SIGKILL. */
        @Override
        public void close() {
            if (process == null) {
                return;
            }
            if (process.isAlive() && paused) {
                // a stopped process would handle SIGTERM only once continued
                try {
                    resume();
                } catch (IOException | AssertionError e) {
                    log("[harness] SIGCONT before stopping failed: " + e);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            if (process.isAlive()) {
                // ProcessHandle.destroy() keeps our ends of the pipes open, so the shutdown output is kept
                if (!process.toHandle().destroy()) {
                    process.destroy();
                }
                try {
                    if (!process.waitFor(15, TimeUnit.SECONDS)) {
                        log("[harness] no exit 15 s after SIGTERM; killing");
                        process.destroyForcibly();
                        process.waitFor(10, TimeUnit.SECONDS);
                    }
                } catch (InterruptedException e) {
                    process.destroyForcibly();
                    Thread.currentThread().interrupt();
                }
            }
            try {
                joinPumps();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
