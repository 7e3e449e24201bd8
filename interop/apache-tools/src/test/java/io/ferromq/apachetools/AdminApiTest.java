package io.ferromq.apachetools;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.rocketmq.client.QueryResult;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.exception.MQClientException;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.TopicConfig;
import org.apache.rocketmq.common.constant.PermName;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageDecoder;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.common.topic.TopicValidator;
import org.apache.rocketmq.remoting.protocol.admin.ConsumeStats;
import org.apache.rocketmq.remoting.protocol.admin.OffsetWrapper;
import org.apache.rocketmq.remoting.protocol.admin.TopicOffset;
import org.apache.rocketmq.remoting.protocol.admin.TopicStatsTable;
import org.apache.rocketmq.remoting.protocol.body.ClusterInfo;
import org.apache.rocketmq.remoting.protocol.body.Connection;
import org.apache.rocketmq.remoting.protocol.body.ConsumerConnection;
import org.apache.rocketmq.remoting.protocol.body.KVTable;
import org.apache.rocketmq.remoting.protocol.body.TopicConfigSerializeWrapper;
import org.apache.rocketmq.remoting.protocol.body.TopicList;
import org.apache.rocketmq.remoting.protocol.heartbeat.ConsumeType;
import org.apache.rocketmq.remoting.protocol.heartbeat.MessageModel;
import org.apache.rocketmq.remoting.protocol.route.BrokerData;
import org.apache.rocketmq.remoting.protocol.route.QueueData;
import org.apache.rocketmq.remoting.protocol.route.TopicRouteData;
import org.apache.rocketmq.remoting.protocol.subscription.SubscriptionGroupConfig;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Apache's Java admin API ({@link DefaultMQAdminExt}, rocketmq-tools 5.5.0) and the client's
 * topic creation against one FerroMQ process. Tests that depend on earlier ones say so and run in
 * {@code @Order}; the one that wipes the broker's write permission runs last.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class AdminApiTest {

    @RegisterExtension
    static final FerroMQExtension FERRO = new FerroMQExtension();

    static final String CLUSTER = "DefaultCluster";
    static final String BROKER = "broker-a";
    static final String UID = Clients.uid();
    static final String TOPIC1 = "ApiTopic1_" + UID;
    static final String TOPIC2 = "ApiTopic2_" + UID;
    static final String TOPIC3 = "ApiTopic3_" + UID;
    static final String TOPIC4 = "ApiTopic4_" + UID;
    static final String CONSUMER_GROUP = "ApiCG_" + UID;
    static final String SUB_GROUP = "ApiSG_" + UID;
    static final String KEY = "ApiKey_" + UID;
    static final int SENT_TO_TOPIC1 = 16;

    static FerroMQServer server;
    static Clients clients;
    static DefaultMQAdminExt admin;
    static String ns;
    static String addr;
    /** The messages sent to TOPIC1 by {@link #sendThenExamineTopicStats()}. */
    static final List<SendResult> SENT = new ArrayList<>();
    static final List<String> BODIES = new ArrayList<>();

    @BeforeAll
    static void startAdmin() throws Exception {
        server = FERRO.server();
        ns = server.namesrvAddr();
        addr = server.brokerAddr();
        clients = new Clients(ns);
        admin = clients.admin();
    }

    @AfterAll
    static void shutdown() {
        if (clients != null) {
            clients.close();
        }
    }

    // ------------------------------------------------------------------ topic creation

    @Test
    @Order(1)
    void createTopicByClusterName() throws Exception {
        admin.createTopic(CLUSTER, TOPIC1, 8, new HashMap<>());
        QueueData qd = awaitRoute(TOPIC1).getQueueDatas().get(0);
        assertEquals(8, qd.getWriteQueueNums(), "write queues of " + TOPIC1);
        assertEquals(8, qd.getReadQueueNums(), "read queues of " + TOPIC1);
        assertEquals(BROKER, qd.getBrokerName(), "broker of " + TOPIC1);
    }

    /**
     * TBW102 is the route key of the auto-create default topic. With autoCreateTopicEnable=false
     * Apache's broker does not create it, so the name server has no route and the API refuses.
     * FerroMQ keeps TBW102 (without the INHERIT bit, so nothing is auto-created through it), so
     * that {@code createTopic("TBW102", …)}, the documented Java way to create a topic, works
     * whatever the setting: a deliberate difference, written down in the README.
     */
    @Test
    @Order(2)
    void createTopicByDefaultTopicKey() throws Exception {
        if (server.isExternal()) {
            MQClientException e = assertThrows(MQClientException.class,
                () -> admin.createTopic("TBW102", TOPIC2, 4, new HashMap<>()),
                "Apache: with autoCreateTopicEnable=false there is no TBW102 route to create a topic by");
            assertTrue(String.valueOf(e.getMessage()).contains("TBW102") || String.valueOf(e.getCause()).contains("TBW102"),
                "the error must be about the missing TBW102 route: " + e);
            assertFalse(admin.fetchAllTopicList().getTopicList().contains(TOPIC2), TOPIC2 + " must not exist");
            return;
        }
        admin.createTopic("TBW102", TOPIC2, 4, new HashMap<>());
        QueueData qd = awaitRoute(TOPIC2).getQueueDatas().get(0);
        assertEquals(4, qd.getWriteQueueNums(), "write queues of " + TOPIC2);
        TopicConfig template = admin.examineTopicConfig(server.brokerAddr(), "TBW102");
        assertEquals(0, template.getPerm() & PermName.PERM_INHERIT, "no auto-creation through TBW102 when it is off");
    }

    @Test
    @Order(3)
    void createTopicByBrokerName() throws Exception {
        admin.createTopic(BROKER, TOPIC3, 2, new HashMap<>());
        QueueData qd = awaitRoute(TOPIC3).getQueueDatas().get(0);
        assertEquals(2, qd.getWriteQueueNums(), "write queues of " + TOPIC3);
        assertEquals(2, qd.getReadQueueNums(), "read queues of " + TOPIC3);
    }

    /** UPDATE_AND_CREATE_TOPIC_LIST (18): many topics in one request, routed at once. */
    @Test
    @Order(3)
    void createTopicConfigList() throws Exception {
        List<TopicConfig> list = new ArrayList<>();
        for (int i = 0; i < 50; i++) {
            TopicConfig tc = new TopicConfig("ApiListTopic" + i + "_" + UID, 3, 3, PermName.PERM_READ | PermName.PERM_WRITE);
            list.add(tc);
        }
        Map<String, String> fifo = new HashMap<>();
        fifo.put("+message.type", "FIFO");
        list.get(7).setAttributes(fifo);
        admin.createAndUpdateTopicConfigList(addr, list);
        for (TopicConfig tc : list) {
            QueueData qd = awaitRoute(tc.getTopicName()).getQueueDatas().get(0);
            assertEquals(3, qd.getWriteQueueNums(), "write queues of " + tc.getTopicName());
        }
        TopicConfig stored = admin.examineTopicConfig(addr, list.get(7).getTopicName());
        assertEquals("FIFO", stored.getAttributes().get("message.type"), "attributes of " + stored);

        // one invalid name refuses the whole list: nothing of it is stored
        List<TopicConfig> bad = new ArrayList<>();
        bad.add(new TopicConfig("ApiListGood_" + UID, 1, 1, PermName.PERM_READ | PermName.PERM_WRITE));
        bad.add(new TopicConfig("Api List Bad " + UID, 1, 1, PermName.PERM_READ | PermName.PERM_WRITE));
        MQClientException refused = assertThrows(MQClientException.class, () -> admin.createAndUpdateTopicConfigList(addr, bad));
        assertEquals(29, refused.getResponseCode(), "INVALID_PARAMETER (29): " + refused.getMessage());
        assertFalse(admin.fetchAllTopicList().getTopicList().contains("ApiListGood_" + UID),
            "nothing of a refused list is stored");
    }

    /** UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST (225). */
    @Test
    @Order(3)
    void createSubscriptionGroupConfigList() throws Exception {
        List<SubscriptionGroupConfig> list = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            SubscriptionGroupConfig cfg = new SubscriptionGroupConfig();
            cfg.setGroupName("ApiListGroup" + i + "_" + UID);
            cfg.setRetryMaxTimes(i + 1);
            list.add(cfg);
        }
        admin.createAndUpdateSubscriptionGroupConfigList(addr, list);
        for (SubscriptionGroupConfig cfg : list) {
            SubscriptionGroupConfig got = admin.examineSubscriptionGroupConfig(addr, cfg.getGroupName());
            assertNotNull(got, cfg.getGroupName());
            assertEquals(cfg.getRetryMaxTimes(), got.getRetryMaxTimes(), "retryMaxTimes of " + cfg.getGroupName());
        }
    }

    /** The producer's (older) createTopic(key, newTopic, queueNum, attributes). */
    @Test
    @Order(4)
    @SuppressWarnings("deprecation")
    void producerCreateTopic() throws Exception {
        DefaultMQProducer p = clients.producer("ApiPG_" + UID);
        p.createTopic(CLUSTER, TOPIC4, 4, new HashMap<>());
        QueueData qd = awaitRoute(TOPIC4).getQueueDatas().get(0);
        assertEquals(4, qd.getWriteQueueNums(), "write queues of " + TOPIC4);
    }

    // ------------------------------------------------------------------ cluster, topics

    @Test
    @Order(5)
    void examineBrokerClusterInfo() throws Exception {
        ClusterInfo ci = admin.examineBrokerClusterInfo();
        assertEquals(Set.of(BROKER), ci.getClusterAddrTable().get(CLUSTER), "clusterAddrTable: " + ci.getClusterAddrTable());
        BrokerData bd = ci.getBrokerAddrTable().get(BROKER);
        assertNotNull(bd, "brokerAddrTable: " + ci.getBrokerAddrTable());
        assertEquals(CLUSTER, bd.getCluster(), "cluster of " + BROKER);
        assertEquals(addr, bd.getBrokerAddrs().get(0L), "master address of " + BROKER + ": " + bd.getBrokerAddrs());
    }

    @Test
    @Order(6)
    void fetchAllTopicList() throws Exception {
        Set<String> topics = admin.fetchAllTopicList().getTopicList();
        for (String t : List.of(TOPIC1, TOPIC3, TOPIC4, CLUSTER, BROKER)) {
            assertTrue(topics.contains(t), "fetchAllTopicList must list " + t + ": " + topics);
        }
    }

    /** GET_TOPICS_BY_CLUSTER (224). */
    @Test
    @Order(7)
    void topicsByCluster() throws Exception {
        Set<String> topics = admin.fetchTopicsByCLuster(CLUSTER).getTopicList();
        for (String t : List.of(TOPIC1, TOPIC3, TOPIC4)) {
            assertTrue(topics.contains(t), "the topics of " + CLUSTER + " must include " + t + ": " + topics);
        }
    }

    /** GET_SYSTEM_TOPIC_LIST_FROM_NS (304): the cluster and broker names. */
    @Test
    @Order(8)
    void systemTopicList() throws Exception {
        TopicList list = admin.getDefaultMQAdminExtImpl().getMqClientInstance().getMQClientAPIImpl()
            .getSystemTopicList(5_000);
        assertTrue(list.getTopicList().contains(CLUSTER), "system topics must include the cluster name: " + list.getTopicList());
        assertTrue(list.getTopicList().contains(BROKER), "system topics must include the broker name: " + list.getTopicList());
        assertEquals(addr, list.getBrokerAddr(), "brokerAddr of the system topic list");
    }

    /** GET_TOPIC_CONFIG (351). */
    @Test
    @Order(9)
    void examineTopicConfig() throws Exception {
        TopicConfig tc = admin.examineTopicConfig(addr, TOPIC1);
        assertNotNull(tc, "topic config of " + TOPIC1);
        assertEquals(TOPIC1, tc.getTopicName(), "topicName");
        assertEquals(8, tc.getReadQueueNums(), "readQueueNums");
        assertEquals(8, tc.getWriteQueueNums(), "writeQueueNums");
        assertEquals(PermName.PERM_READ | PermName.PERM_WRITE, tc.getPerm(), "perm");
    }

    // ------------------------------------------------------------------ messages

    @Test
    @Order(10)
    void sendThenExamineTopicStats() throws Exception {
        DefaultMQProducer p = clients.producer("ApiPG1_" + UID);
        for (int i = 0; i < SENT_TO_TOPIC1; i++) {
            String body = "api-body-" + i + "-" + UID;
            Message m = new Message(TOPIC1, "TagA", i < 3 ? KEY : "ApiOther_" + i, body.getBytes(StandardCharsets.UTF_8));
            SendResult r = Clients.sendWhenRouted(p, m, new MessageQueue(TOPIC1, BROKER, i % 8));
            assertEquals(SendStatus.SEND_OK, r.getSendStatus(), "send #" + i + ": " + r);
            SENT.add(r);
            BODIES.add(body);
        }
        TopicStatsTable stats = admin.examineTopicStats(TOPIC1);
        Map<MessageQueue, TopicOffset> table = stats.getOffsetTable();
        assertEquals(8, table.size(), "one entry per queue: " + table);
        long total = 0;
        for (Map.Entry<MessageQueue, TopicOffset> e : table.entrySet()) {
            assertEquals(BROKER, e.getKey().getBrokerName(), "broker of " + e.getKey());
            assertEquals(0, e.getValue().getMinOffset(), "min offset of " + e.getKey());
            assertEquals(2, e.getValue().getMaxOffset(), "max offset of " + e.getKey() + " (2 messages each)");
            assertTrue(e.getValue().getLastUpdateTimestamp() > 0, "last update time of " + e.getKey());
            total += e.getValue().getMaxOffset();
        }
        assertEquals(SENT_TO_TOPIC1, total, "messages in " + TOPIC1);

        // GET_EARLIEST_MSG_STORETIME (32): the store time of queue 0's first message.
        MessageExt first = admin.viewMessage(TOPIC1, SENT.get(0).getOffsetMsgId());
        assertEquals(first.getStoreTimestamp(), admin.earliestMsgStoreTime(new MessageQueue(TOPIC1, BROKER, 0)),
            "the earliest store time of queue 0 is its first message's");
    }

    /**
     * GET_SYSTEM_TOPIC_LIST_FROM_BROKER (305) through {@code getUserTopicConfig}: the broker's
     * topics without its system topics, retry and dead-letter topics.
     */
    @Test
    @Order(11)
    void userTopicConfig() throws Exception {
        TopicConfigSerializeWrapper user = admin.getUserTopicConfig(addr, false, 5_000);
        Set<String> names = user.getTopicConfigTable().keySet();
        assertTrue(names.contains(TOPIC1), "user topics: " + names);
        assertTrue(names.stream().noneMatch(t -> TopicValidator.isSystemTopic(t) || t.startsWith("%RETRY%")
            || t.startsWith("%DLQ%")), "system, retry or dead-letter topics among the user topics: " + names);
    }

    /** Depends on {@link #sendThenExamineTopicStats()}. QUERY_MESSAGE (12) by key. */
    @Test
    @Order(11)
    void queryMessageByKey() throws Exception {
        Set<String> want = new HashSet<>();
        for (int i = 0; i < 3; i++) {
            want.add(SENT.get(i).getMsgId());
        }
        AtomicReference<QueryResult> last = new AtomicReference<>();
        boolean found = Clients.await(10_000, () -> {
            try {
                QueryResult qr = admin.queryMessage(TOPIC1, KEY, 32, 0, Long.MAX_VALUE);
                last.set(qr);
                Set<String> ids = new HashSet<>();
                for (MessageExt m : qr.getMessageList()) {
                    ids.add(m.getMsgId());
                }
                return ids.containsAll(want);
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
        });
        assertTrue(found, "queryMessage by key " + KEY + " must find the 3 messages with it; last result: "
            + (last.get() == null ? "none (every query failed)" : last.get().getMessageList()));
        for (MessageExt m : last.get().getMessageList()) {
            assertEquals(KEY, m.getKeys(), "every message found by key carries it: " + m);
            assertEquals(TOPIC1, m.getTopic(), "topic of " + m);
        }
    }

    /** Depends on {@link #sendThenExamineTopicStats()}. VIEW_MESSAGE_BY_ID (33) and by unique key. */
    @Test
    @Order(12)
    void viewMessage() throws Exception {
        SendResult r = SENT.get(5);
        MessageExt byOffsetId = admin.viewMessage(TOPIC1, r.getOffsetMsgId());
        assertEquals(BODIES.get(5), new String(byOffsetId.getBody(), StandardCharsets.UTF_8), "body by offsetMsgId");
        assertEquals(TOPIC1, byOffsetId.getTopic(), "topic");
        assertEquals(r.getMessageQueue().getQueueId(), byOffsetId.getQueueId(), "queue id");
        assertEquals(r.getQueueOffset(), byOffsetId.getQueueOffset(), "queue offset");
        assertEquals(r.getMsgId(), byOffsetId.getMsgId(), "msgId of the viewed message is its UNIQ_KEY");
        assertEquals(MessageDecoder.decodeMessageId(r.getOffsetMsgId()).getOffset(), byOffsetId.getCommitLogOffset(),
            "commit log offset = the one in the offsetMsgId");

        MessageExt byUniqKey = admin.viewMessage(TOPIC1, r.getMsgId());
        assertEquals(BODIES.get(5), new String(byUniqKey.getBody(), StandardCharsets.UTF_8), "body by msgId (UNIQ_KEY)");
        assertEquals(r.getQueueOffset(), byUniqKey.getQueueOffset(), "queue offset by msgId (UNIQ_KEY)");
    }

    /** Depends on {@link #sendThenExamineTopicStats()}. GET_CONSUME_STATS (208), GET_CONSUMER_CONNECTION_LIST (203). */
    @Test
    @Order(13)
    void consumeThenExamineConsumeStatsAndConnection() throws Exception {
        Set<String> received = ConcurrentHashMap.newKeySet();
        DefaultMQPushConsumer c = clients.pushConsumer(CONSUMER_GROUP, TOPIC1, (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                received.add(new String(m.getBody(), StandardCharsets.UTF_8));
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        clients.start(c);
        Clients.awaitOrFail("the consumer to receive all " + SENT_TO_TOPIC1 + " messages (has " + received.size() + ")",
            30_000, () -> received.containsAll(BODIES));

        AtomicReference<Object> last = new AtomicReference<>();
        boolean settled = Clients.await(15_000, () -> {
            try {
                ConsumeStats cs = admin.examineConsumeStats(CONSUMER_GROUP);
                last.set(cs.getOffsetTable());
                long ofTopic = cs.getOffsetTable().keySet().stream().filter(q -> q.getTopic().equals(TOPIC1)).count();
                return ofTopic == 8 && cs.computeTotalDiff() == 0;
            } catch (Exception e) {
                last.set(e);
                return false;
            }
        });
        assertTrue(settled, "examineConsumeStats must show the 8 queues of " + TOPIC1
            + " fully consumed (total diff 0); last: " + last.get());
        ConsumeStats cs = admin.examineConsumeStats(CONSUMER_GROUP);
        for (Map.Entry<MessageQueue, OffsetWrapper> e : cs.getOffsetTable().entrySet()) {
            if (e.getKey().getTopic().equals(TOPIC1)) {
                assertEquals(2, e.getValue().getBrokerOffset(), "broker offset of " + e.getKey());
                assertEquals(2, e.getValue().getConsumerOffset(), "consumer offset of " + e.getKey());
                assertTrue(e.getValue().getLastTimestamp() > 0, "last consumed message time of " + e.getKey());
            }
        }

        ConsumerConnection cc = admin.examineConsumerConnectionInfo(CONSUMER_GROUP);
        String clientId = Clients.clientId(c);
        Set<String> ids = new HashSet<>();
        for (Connection conn : cc.getConnectionSet()) {
            ids.add(conn.getClientId());
        }
        assertEquals(Set.of(clientId), ids, "the connections of " + CONSUMER_GROUP);
        assertTrue(cc.getSubscriptionTable().containsKey(TOPIC1), "subscriptions: " + cc.getSubscriptionTable());
        assertEquals("*", cc.getSubscriptionTable().get(TOPIC1).getSubString(), "subscription expression");
        assertEquals(ConsumeType.CONSUME_PASSIVELY, cc.getConsumeType(), "consume type of a push consumer");
        assertEquals(MessageModel.CLUSTERING, cc.getMessageModel(), "message model");

        // QUERY_TOPICS_BY_CONSUMER (343): the topics the group consumes.
        TopicList consumed = admin.queryTopicsByConsumer(CONSUMER_GROUP);
        assertTrue(consumed.getTopicList().contains(TOPIC1), "topics of " + CONSUMER_GROUP + ": " + consumed.getTopicList());
    }

    /**
     * GET_ALL_PRODUCER_INFO (328) lists a producer that has sent its heartbeat, and
     * QUERY_SUBSCRIPTION_BY_CONSUMER (345) answers an online group's subscription, or nothing
     * for a topic it does not subscribe.
     */
    @Test
    @Order(20)
    void allProducerInfoAndSubscriptionOfAConsumer() throws Exception {
        String group = "ApiPG_" + UID;
        DefaultMQProducer p = clients.producer(group);
        // A client heartbeats the brokers its routes name.
        p.getDefaultMQProducerImpl().getMqClientFactory().updateTopicRouteInfoFromNameServer(TOPIC1);
        p.getDefaultMQProducerImpl().getMqClientFactory().sendHeartbeatToAllBrokerWithLock();
        org.apache.rocketmq.remoting.protocol.body.ProducerTableInfo table = admin.getAllProducerInfo(addr);
        List<org.apache.rocketmq.remoting.protocol.body.ProducerInfo> ours = table.getData().get(group);
        assertNotNull(ours, "producer groups listed: " + table.getData().keySet());
        assertEquals(Clients.clientId(p), ours.get(0).getClientId(), "the producer's client id");
        assertTrue(ours.get(0).getLastUpdateTimestamp() > System.currentTimeMillis() - 60_000,
            "last heartbeat: " + ours.get(0).getLastUpdateTimestamp());

        String sub = "ApiSubG_" + UID;
        DefaultMQPushConsumer c = clients.pushConsumer(sub, TOPIC1, (msgs, ctx) -> ConsumeConcurrentlyStatus.CONSUME_SUCCESS);
        c.subscribe(TOPIC1, "TagA || TagB");
        clients.start(c);
        AtomicReference<Object> seen = new AtomicReference<>();
        Clients.awaitOrFail("the group's subscription to be known (last: " + seen.get() + ")", 15_000, () -> {
            try {
                org.apache.rocketmq.remoting.protocol.heartbeat.SubscriptionData d = admin.querySubscription(sub, TOPIC1);
                seen.set(d);
                return d != null && "TagA || TagB".equals(d.getSubString());
            } catch (Exception e) {
                seen.set(e);
                return false;
            }
        });
        assertEquals(null, admin.querySubscription("ApiNobody_" + UID, TOPIC1), "a group that is not online");
    }

    /** QUERY_CONSUME_TIME_SPAN (303): a fully consumed topic's queues show no delay. */
    @Test
    @Order(21)
    void consumeTimeSpanOfAConsumedTopic() throws Exception {
        List<org.apache.rocketmq.remoting.protocol.body.QueueTimeSpan> spans =
            admin.queryConsumeTimeSpan(TOPIC1, CONSUMER_GROUP);
        assertEquals(8, spans.size(), "one span per write queue: " + spans);
        for (org.apache.rocketmq.remoting.protocol.body.QueueTimeSpan q : spans) {
            assertTrue(q.getMaxTimeStamp() > 0 && q.getMinTimeStamp() > 0, "store times of " + q.getMessageQueue() + " in " + spans);
            assertEquals(q.getMaxTimeStamp(), q.getConsumeTimeStamp(), "consumed up to the newest: " + q.getMessageQueue());
            assertEquals(0, q.getDelayTime(), "no delay: " + q.getMessageQueue());
        }
    }

    /** CLONE_GROUP_OFFSET (314): another group takes the consumed group's offsets on a topic. */
    @Test
    @Order(23)
    void cloneGroupOffsetCopiesCommittedOffsets() throws Exception {
        String dest = "ApiClone_" + UID;
        admin.cloneGroupOffset(CONSUMER_GROUP, dest, TOPIC1, true);
        AtomicReference<Object> last = new AtomicReference<>();
        Clients.awaitOrFail("the cloned offsets (last: " + last + ")", 15_000, () -> {
            try {
                ConsumeStats cs = admin.examineConsumeStats(dest, TOPIC1);
                last.set(cs.getOffsetTable());
                return cs.getOffsetTable().size() == 8
                    && cs.getOffsetTable().values().stream().allMatch(o -> o.getConsumerOffset() == 2);
            } catch (Exception e) {
                last.set(e);
                return false;
            }
        });
    }

    /** UPDATE_AND_GET_GROUP_FORBIDDEN (353): forbid a group to read a topic, ask, allow again. */
    @Test
    @Order(24)
    void groupReadForbiddenIsSetAskedAndLifted() throws Exception {
        String group = "ApiForbidden_" + UID;
        org.apache.rocketmq.remoting.protocol.subscription.GroupForbidden f =
            admin.updateAndGetGroupReadForbidden(addr, group, TOPIC1, false);
        assertEquals(Boolean.FALSE, f.getReadable(), "forbidden: " + f);
        assertEquals(Boolean.FALSE, admin.updateAndGetGroupReadForbidden(addr, group, TOPIC1, null).getReadable(),
            "asked without a change");
        assertEquals(Boolean.TRUE, admin.updateAndGetGroupReadForbidden(addr, group, TOPIC1, true).getReadable(),
            "allowed again");
    }

    /** CLEAN_EXPIRED_CONSUMEQUEUE (306), DELETE_EXPIRED_COMMITLOG (329), CLEAN_UNUSED_TOPIC (316). */
    @Test
    @Order(22)
    void storeCleanupsAnswerSuccess() throws Exception {
        assertTrue(admin.cleanExpiredConsumerQueueByAddr(addr), "cleanExpiredConsumerQueueByAddr");
        assertTrue(admin.deleteExpiredCommitLogByAddr(addr), "deleteExpiredCommitLogByAddr");
        assertTrue(admin.cleanUnusedTopicByAddr(addr), "cleanUnusedTopicByAddr");
        assertTrue(admin.examineTopicStats(TOPIC1).getOffsetTable().values().stream().anyMatch(o -> o.getMaxOffset() > 0),
            "the messages of " + TOPIC1 + " are still there");
    }

    // ------------------------------------------------------------------ groups

    @Test
    @Order(14)
    void subscriptionGroupCreateExamineDelete() throws Exception {
        SubscriptionGroupConfig cfg = new SubscriptionGroupConfig();
        cfg.setGroupName(SUB_GROUP);
        cfg.setRetryMaxTimes(7);
        cfg.setConsumeBroadcastEnable(false);
        cfg.setConsumeFromMinEnable(false);
        admin.createAndUpdateSubscriptionGroupConfig(addr, cfg);

        SubscriptionGroupConfig got = admin.examineSubscriptionGroupConfig(addr, SUB_GROUP);
        assertNotNull(got, "the group just created");
        assertEquals(SUB_GROUP, got.getGroupName(), "groupName");
        assertEquals(7, got.getRetryMaxTimes(), "retryMaxTimes");
        assertFalse(got.isConsumeBroadcastEnable(), "consumeBroadcastEnable");
        assertFalse(got.isConsumeFromMinEnable(), "consumeFromMinEnable");

        admin.deleteSubscriptionGroup(addr, SUB_GROUP);
        SubscriptionGroupConfig after = admin.examineSubscriptionGroupConfig(addr, SUB_GROUP);
        if (server.isExternal()) {
            // Apache 5.5.0 re-creates the group with defaults within the delete request.
            assertNotNull(after, "Apache re-creates a deleted group with a default config");
            assertEquals(16, after.getRetryMaxTimes(), "retryMaxTimes must be the default 16 again after the delete");
            assertTrue(after.isConsumeFromMinEnable(), "consumeFromMinEnable must be the default (true) again");
        } else {
            // FerroMQ leaves a deleted group deleted (a difference written down in the README).
            assertNull(after, "the deleted group is gone");
        }
    }

    // ------------------------------------------------------------------ broker config and stats

    @Test
    @Order(15)
    void getAndUpdateBrokerConfig() throws Exception {
        Properties p = admin.getBrokerConfig(addr);
        assertEquals(BROKER, p.getProperty("brokerName"), "brokerName");
        assertEquals(CLUSTER, p.getProperty("brokerClusterName"), "brokerClusterName");
        assertEquals("false", p.getProperty("autoCreateTopicEnable"), "autoCreateTopicEnable");
        assertEquals("true", p.getProperty("enablePropertyFilter"), "enablePropertyFilter");
        assertEquals("SYNC_FLUSH", p.getProperty("flushDiskType"), "flushDiskType");
        assertEquals("5242880", p.getProperty("maxMessageSize"), "maxMessageSize");

        String before = p.getProperty("fileReservedTime");
        Properties update = new Properties();
        update.setProperty("fileReservedTime", "60");
        try {
            admin.updateBrokerConfig(addr, update);
            assertEquals("60", admin.getBrokerConfig(addr).getProperty("fileReservedTime"),
                "fileReservedTime after updateBrokerConfig");
        } finally {
            if (before != null && server.isExternal()) {
                Properties restore = new Properties();
                restore.setProperty("fileReservedTime", before);
                admin.updateBrokerConfig(addr, restore);
            }
        }
    }

    /** GET_BROKER_RUNTIME_INFO (28). */
    @Test
    @Order(16)
    void fetchBrokerRuntimeStats() throws Exception {
        KVTable kv = admin.fetchBrokerRuntimeStats(addr);
        Map<String, String> t = kv.getTable();
        for (String key : List.of("msgPutTotalTodayNow", "msgGetTotalTodayNow", "commitLogMaxOffset", "brokerActive",
            "brokerVersionDesc", "putTps", "getTransferredTps", "bootTimestamp", "earliestMessageTimeStamp")) {
            assertTrue(t.containsKey(key), "runtime stats must have " + key + ": " + t.keySet());
        }
        assertEquals("true", t.get("brokerActive"), "brokerActive");
        assertTrue(Long.parseLong(t.get("commitLogMaxOffset")) > 0, "commitLogMaxOffset after sends: " + t.get("commitLogMaxOffset"));
        assertTrue(Long.parseLong(t.get("msgPutTotalTodayNow")) >= SENT_TO_TOPIC1, "msgPutTotalTodayNow: " + t.get("msgPutTotalTodayNow"));
    }

    // ------------------------------------------------------------------ name server

    /** PUT_KV_CONFIG (100), GET_KV_CONFIG (101), DELETE_KV_CONFIG (102). */
    @Test
    @Order(17)
    void kvConfig() throws Exception {
        String namespace = "ORDER_TOPIC_CONFIG";
        String value = BROKER + ":8";
        admin.createAndUpdateKvConfig(namespace, TOPIC1, value);
        assertEquals(value, admin.getKVConfig(namespace, TOPIC1), "the value just put");
        admin.createAndUpdateKvConfig(namespace, TOPIC1, BROKER + ":4");
        assertEquals(BROKER + ":4", admin.getKVConfig(namespace, TOPIC1), "the value after an update");
        // GET_KVLIST_BY_NAMESPACE (219)
        KVTable table = admin.getKVListByNamespace(namespace);
        assertEquals(BROKER + ":4", table.getTable().get(TOPIC1), "the namespace's list: " + table.getTable());
        admin.deleteKvConfig(namespace, TOPIC1);
        MQClientException e = assertThrows(MQClientException.class, () -> admin.getKVConfig(namespace, TOPIC1),
            "after deleteKvConfig the key must be gone");
        assertEquals(22, e.getResponseCode(), "QUERY_NOT_FOUND (22) for a deleted key: " + e);
    }

    /** GET_NAMESRV_CONFIG (319). */
    @Test
    @Order(18)
    void getNameServerConfig() throws Exception {
        Map<String, Properties> all = admin.getNameServerConfig(List.of(ns));
        assertEquals(Set.of(ns), all.keySet(), "one entry per name server asked");
        Properties p = all.get(ns);
        assertNotNull(p, "config of " + ns);
        assertEquals(String.valueOf(server.namesrvPort()), p.getProperty("listenPort"), "listenPort in " + p);
    }

    /** DELETE_TOPIC_IN_BROKER (215) and DELETE_TOPIC_IN_NAMESRV (216). */
    @Test
    @Order(19)
    void deleteTopic() throws Exception {
        admin.deleteTopic(TOPIC4, CLUSTER);
        assertFalse(admin.fetchAllTopicList().getTopicList().contains(TOPIC4), "fetchAllTopicList after deleteTopic");
        MQClientException e = assertThrows(MQClientException.class, () -> admin.examineTopicRouteInfo(TOPIC4),
            "a deleted topic has no route");
        assertEquals(17, e.getResponseCode(), "TOPIC_NOT_EXIST (17): " + e);
        assertThrows(Exception.class, () -> admin.examineTopicConfig(addr, TOPIC4), "the broker must not know "
            + TOPIC4 + " any more");
    }

    /** WIPE_WRITE_PERM_OF_BROKER (205), ADD_WRITE_PERM_OF_BROKER (327). Runs last: it affects every topic. */
    @Test
    @Order(30)
    void wipeThenAddWritePermOfBroker() throws Exception {
        try {
            int wiped = admin.wipeWritePermOfBroker(ns, BROKER);
            assertTrue(wiped > 0, "wipeWritePermOfBroker must report the topics it changed: " + wiped);
            QueueData qd = admin.examineTopicRouteInfo(TOPIC3).getQueueDatas().get(0);
            assertFalse(PermName.isWriteable(qd.getPerm()), "route perm after the wipe must lack write: " + qd.getPerm());
            assertTrue(PermName.isReadable(qd.getPerm()), "route perm after the wipe must keep read: " + qd.getPerm());

            DefaultMQProducer blocked = clients.producer("ApiPGw_" + UID);
            Message m = new Message(TOPIC3, "after wipe".getBytes(StandardCharsets.UTF_8));
            assertThrows(MQClientException.class, () -> blocked.send(m),
                "sending must fail while the broker has no write permission");

            int added = admin.addWritePermOfBroker(ns, BROKER);
            assertTrue(added > 0, "addWritePermOfBroker must report the topics it changed: " + added);
            QueueData back = admin.examineTopicRouteInfo(TOPIC3).getQueueDatas().get(0);
            assertTrue(PermName.isWriteable(back.getPerm()), "route perm after addWritePerm must have write: " + back.getPerm());

            DefaultMQProducer again = clients.producer("ApiPGa_" + UID);
            SendResult r = again.send(new Message(TOPIC3, "after add".getBytes(StandardCharsets.UTF_8)));
            assertEquals(SendStatus.SEND_OK, r.getSendStatus(), "sending works again: " + r);
        } finally {
            try {
                admin.addWritePermOfBroker(ns, BROKER);
            } catch (Exception ignored) {
                // best effort: the assertions above say what went wrong
            }
        }
    }

    // ------------------------------------------------------------------ helpers

    /** The route of a topic just created (the broker registers it with the name server). */
    static TopicRouteData awaitRoute(String topic) throws Exception {
        AtomicReference<Exception> last = new AtomicReference<>();
        AtomicReference<TopicRouteData> route = new AtomicReference<>();
        boolean ok = Clients.await(10_000, () -> {
            try {
                TopicRouteData r = admin.examineTopicRouteInfo(topic);
                route.set(r);
                return r != null && r.getQueueDatas() != null && !r.getQueueDatas().isEmpty();
            } catch (Exception e) {
                last.set(e);
                return false;
            }
        });
        assertTrue(ok, "no route for " + topic + " within 10 s: " + last.get());
        return route.get();
    }
}
