package io.ferromq.apachetools;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

/**
 * Runs Apache's real mqadmin ({@code org.apache.rocketmq.tools.command.MQAdminStartup}) as a
 * separate JVM, with this JVM's class path, against one name server. Every command must finish
 * within {@link #TIMEOUT_SECONDS}; a command that does not is killed and the test fails.
 *
 * <p>mqadmin exits 0 even when the command failed; a failure shows as a Java stack trace
 * ({@code SubCommandException}, {@code CODE: ... DESC: ...}) in the output.
 */
public final class MqAdmin implements AutoCloseable {

    public static final long TIMEOUT_SECONDS = 60;
    static final String MAIN = "org.apache.rocketmq.tools.command.MQAdminStartup";

    /** One finished run. */
    public record Result(String command, String output, int exitCode, long millis) {

        /** The output's lines. */
        public List<String> lines() {
            return Arrays.asList(output.split("\n", -1));
        }

        public boolean hasException() {
            return output.contains("Exception");
        }

        /** For assertion messages. */
        public String describe() {
            return "mqadmin " + command + "  (exit " + exitCode + ", " + millis + " ms) printed:\n"
                + "----------------------------------------------------------------\n"
                + output
                + "\n----------------------------------------------------------------";
        }
    }

    /**
     * A class-data-sharing archive of mqadmin's classes: the first run writes it at its exit, later
     * runs map it. It saves seconds of JVM start-up per command and changes nothing else.
     * Runs that start while it is being written go without. -Dmqadmin.cds=false turns it off.
     */
    private static final Object CDS_LOCK = new Object();
    private static Path cdsArchive;
    private static boolean cdsDumpStarted;
    private static volatile boolean cdsReady;

    private final String namesrv;
    private final Path home;
    private final List<Result> history = new ArrayList<>();

    /** Whether runs sign their requests ({@code conf/tools.yml} under their ROCKETMQ_HOME). */
    private final boolean signed;

    public MqAdmin(String namesrv) throws IOException {
        this.namesrv = namesrv;
        this.home = Files.createTempDirectory("mqadmin-home-");
        this.signed = false;
    }

    /**
     * An mqadmin that signs with these credentials, as operators set it up: {@code accessKey}
     * and {@code secretKey} in {@code $ROCKETMQ_HOME/conf/tools.yml}.
     */
    public MqAdmin(String namesrv, String accessKey, String secretKey) throws IOException {
        this.namesrv = namesrv;
        this.home = Files.createTempDirectory("mqadmin-home-");
        this.signed = true;
        Files.createDirectories(home.resolve("conf"));
        Files.writeString(home.resolve("conf/tools.yml"),
            "accessKey: " + accessKey + "\nsecretKey: " + secretKey + "\n");
    }

    /** The working directory and user.home of every mqadmin run (consumerStatus writes files there). */
    public Path home() {
        return home;
    }

    /** Every run so far. */
    public synchronized List<Result> history() {
        return new ArrayList<>(history);
    }

    /**
     * Runs {@code mqadmin <command> -n <namesrv> <args...>}; fails the test if it does not end
     * within 60 s. Logback's own status lines ("|-INFO", "|-WARN") are removed.
     */
    public Result run(String command, String... args) {
        List<String> cmd = new ArrayList<>();
        cmd.add(Paths.get(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("-Xmx256m");
        // start-up speed only (the machine is small); no effect on what mqadmin does
        cmd.add("-XX:TieredStopAtLevel=1");
        cmd.add("-XX:+UseSerialGC");
        boolean dumping;
        synchronized (CDS_LOCK) {
            List<String> cds = cdsOptions();
            dumping = cds.stream().anyMatch(o -> o.startsWith("-XX:ArchiveClassesAtExit="));
            cmd.addAll(cds);
        }
        cmd.add("-Duser.home=" + home);
        if (signed) {
            cmd.add("-Drocketmq.home.dir=" + home);
        }
        cmd.add("-Drocketmq.client.logUseSlf4j=false");
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(MAIN);
        cmd.add(command);
        cmd.add("-n");
        cmd.add(namesrv);
        cmd.addAll(Arrays.asList(args));
        String shown = command + " -n " + namesrv + (args.length == 0 ? "" : " " + String.join(" ", args));

        long t0 = System.nanoTime();
        Process p;
        try {
            ProcessBuilder pb = new ProcessBuilder(cmd);
            pb.directory(home.toFile());
            pb.redirectErrorStream(true);
            pb.redirectInput(ProcessBuilder.Redirect.PIPE);
            p = pb.start();
            p.getOutputStream().close();
        } catch (IOException e) {
            throw new IllegalStateException("cannot start mqadmin " + shown, e);
        }
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        Thread reader = new Thread(() -> copy(p.getInputStream(), buf), "mqadmin-output");
        reader.setDaemon(true);
        reader.start();
        boolean finished;
        try {
            finished = p.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS);
            if (!finished) {
                p.destroyForcibly();
                p.waitFor(10, TimeUnit.SECONDS);
            }
            reader.join(5_000);
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while mqadmin " + shown + " ran", e);
        }
        if (dumping && finished) {
            cdsReady = Files.isRegularFile(cdsArchive);
        }
        long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
        String out;
        synchronized (buf) {
            out = clean(buf.toString(StandardCharsets.UTF_8));
        }
        Result r = new Result(shown, out, finished ? p.exitValue() : -1, ms);
        synchronized (this) {
            history.add(r);
        }
        if (!finished) {
            fail("mqadmin " + shown + " did not finish within " + TIMEOUT_SECONDS
                + " s and was killed: a request must never hang. Output so far:\n" + out);
        }
        return r;
    }

    /** Called with CDS_LOCK held. */
    private static List<String> cdsOptions() {
        if (!Boolean.parseBoolean(System.getProperty("mqadmin.cds", "true"))) {
            return List.of();
        }
        List<String> quiet = List.of("-Xlog:cds=off", "-Xlog:cds+dynamic=off");
        List<String> opts = new ArrayList<>();
        if (cdsReady) {
            opts.add("-XX:SharedArchiveFile=" + cdsArchive);
        } else if (!cdsDumpStarted) {
            cdsDumpStarted = true;
            try {
                Path dir = Files.createTempDirectory("mqadmin-cds-");
                dir.toFile().deleteOnExit();
                cdsArchive = dir.resolve("mqadmin.jsa");
                cdsArchive.toFile().deleteOnExit();
            } catch (IOException e) {
                return List.of();
            }
            opts.add("-XX:ArchiveClassesAtExit=" + cdsArchive);
        } else {
            return List.of();
        }
        opts.addAll(quiet);
        return opts;
    }

    /** As {@link #run}, and fails the test with the full output if it printed an exception. */
    public Result ok(String command, String... args) {
        Result r = run(command, args);
        if (r.hasException()) {
            fail("mqadmin " + command + " failed (its output contains an exception):\n" + r.describe());
        }
        return r;
    }

    private static void copy(InputStream in, ByteArrayOutputStream buf) {
        byte[] chunk = new byte[8192];
        try (in) {
            int n;
            while ((n = in.read(chunk)) >= 0) {
                synchronized (buf) {
                    buf.write(chunk, 0, n);
                }
            }
        } catch (IOException ignored) {
            // process killed
        }
    }

    static String clean(String raw) {
        return Arrays.stream(raw.replace("\r\n", "\n").split("\n", -1))
            .filter(l -> !l.contains("|-INFO") && !l.contains("|-WARN"))
            .collect(Collectors.joining("\n"))
            .strip();
    }

    @Override
    public void close() {
        FerroMQServer.deleteRecursively(home);
    }
}
