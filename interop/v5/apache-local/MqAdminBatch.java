import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.rocketmq.tools.command.MQAdminStartup;

/**
 * Runs several mqadmin commands in one JVM (each JVM start costs seconds): one command a line on
 * stdin, arguments separated by spaces (no quoting; blank lines and lines starting with # skipped).
 * Used by STATE_DIR/mqadmin-batch of apache-local.sh. Prints "### <command line>" before each.
 */
public class MqAdminBatch {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        List<String> lines = new ArrayList<>();
        for (String line; (line = in.readLine()) != null; ) {
            line = line.trim();
            if (!line.isEmpty() && !line.startsWith("#")) {
                lines.add(line);
            }
        }
        for (String line : lines) {
            System.out.println("### " + line);
            System.out.flush();
            MQAdminStartup.main0(line.split("\\s+"), null);
            System.out.flush();
        }
        System.exit(0);
    }
}
