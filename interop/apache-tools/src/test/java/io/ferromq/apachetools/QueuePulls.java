package io.ferromq.apachetools;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import org.apache.rocketmq.client.consumer.PullResult;
import org.apache.rocketmq.client.consumer.PullStatus;
import org.apache.rocketmq.client.impl.CommunicationMode;
import org.apache.rocketmq.client.impl.MQClientAPIImpl;
import org.apache.rocketmq.client.impl.consumer.PullResultExt;
import org.apache.rocketmq.common.TopicConfig;
import org.apache.rocketmq.common.constant.PermName;
import org.apache.rocketmq.common.filter.ExpressionType;
import org.apache.rocketmq.common.message.MessageDecoder;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.common.sysflag.PullSysFlag;
import org.apache.rocketmq.remoting.protocol.header.PullMessageRequestHeader;

/**
 * Topics of {@link #QUEUES} queues, and reading all of one back from one broker by address
 * (master or slave) with raw PULL_MESSAGE requests, as the replication tests check a copy.
 */
final class QueuePulls {

    static final int QUEUES = 4;

    private QueuePulls() {
    }

    static TopicConfig topicConfig(String topic) {
        return new TopicConfig(topic, QUEUES, QUEUES, PermName.PERM_READ | PermName.PERM_WRITE);
    }

    /**
     * Pulls every queue of {@code topic} from {@code addr} until the bodies are exactly
     * {@code expected}; fails the test after {@code timeoutMs}. Returns how long that took, in ms.
     */
    static long awaitAllPulled(MQClientAPIImpl api, String addr, String brokerName, String topic,
                               Set<String> expected, long timeoutMs) throws InterruptedException {
        String group = "PullCG_" + Clients.uid();
        String[] last = {"nothing pulled yet"};
        long t0 = System.nanoTime();
        boolean all = Clients.await(timeoutMs, () -> {
            try {
                Set<String> got = new HashSet<>();
                StringBuilder how = new StringBuilder();
                for (int q = 0; q < QUEUES; q++) {
                    how.append(" q").append(q).append(": ").append(pullQueue(api, addr, brokerName, topic, q, group, got));
                }
                Set<String> missing = new LinkedHashSet<>(expected);
                missing.removeAll(got);
                Set<String> extra = new HashSet<>(got);
                extra.removeAll(expected);
                last[0] = got.size() + " distinct bodies pulled, " + missing.size() + " missing (e.g. "
                    + missing.stream().limit(3).toList() + "), " + extra.size() + " unexpected;" + how;
                return missing.isEmpty() && extra.isEmpty();
            } catch (Exception e) {
                last[0] = e.toString();
                return false;
            }
        });
        assertTrue(all, "pulling " + topic + " from " + addr + " did not return the "
            + expected.size() + " bodies sent within " + timeoutMs + " ms; last try: " + last[0]);
        return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
    }

    /** Pulls one queue from offset 0 up to its max offset; adds the bodies to {@code got}; describes the pulls. */
    static String pullQueue(MQClientAPIImpl api, String addr, String brokerName, String topic, int queueId,
                            String group, Set<String> got) throws Exception {
        long max = api.getMaxOffset(addr, new MessageQueue(topic, brokerName, queueId), 5_000);
        long offset = 0;
        String status = "max " + max;
        // bounded: at most 64 pulls of up to 32 messages per queue
        for (int i = 0; i < 64 && offset < max; i++) {
            PullMessageRequestHeader h = new PullMessageRequestHeader();
            h.setConsumerGroup(group);
            h.setTopic(topic);
            h.setQueueId(queueId);
            h.setQueueOffset(offset);
            h.setMaxMsgNums(32);
            // the subscription flag: the broker takes the subscription from this request, as it
            // does for DefaultMQPullConsumer (no heartbeat of this group reached the broker)
            h.setSysFlag(PullSysFlag.buildSysFlag(false, false, true, false));
            h.setCommitOffset(0L);
            h.setSuspendTimeoutMillis(0L);
            h.setSubscription("*");
            h.setSubVersion(0L);
            h.setExpressionType(ExpressionType.TAG);
            PullResult r = api.pullMessage(addr, h, 10_000, CommunicationMode.SYNC, null);
            if (r.getPullStatus() != PullStatus.FOUND) {
                return status + ", " + r.getPullStatus() + " at " + offset;
            }
            byte[] bin = ((PullResultExt) r).getMessageBinary();
            List<MessageExt> msgs = MessageDecoder.decodes(ByteBuffer.wrap(bin));
            for (MessageExt m : msgs) {
                got.add(new String(m.getBody(), StandardCharsets.UTF_8));
            }
            if (r.getNextBeginOffset() <= offset) {
                return status + ", next offset " + r.getNextBeginOffset() + " after " + offset;
            }
            offset = r.getNextBeginOffset();
        }
        return status + ", pulled to " + offset;
    }
}
