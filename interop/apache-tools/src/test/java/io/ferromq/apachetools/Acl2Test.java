package io.ferromq.apachetools;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.apache.rocketmq.acl.common.AclClientRPCHook;
import org.apache.rocketmq.acl.common.SessionCredentials;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.exception.MQBrokerException;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.TopicConfig;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.remoting.protocol.body.AclInfo;
import org.apache.rocketmq.remoting.protocol.body.UserInfo;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * ACL 2.0 (authenticationEnabled, authorizationEnabled) through Apache's own tools: mqadmin's
 * createUser … listAcl signing with {@code conf/tools.yml}, the admin API's user and ACL methods,
 * and the 5.5 Java client signing with {@code AclClientRPCHook} as a user whose policies allow one
 * topic and one group. Against Apache (against-apache.sh) this class gets a broker of its own
 * with the same settings ({@code -Dtarget.auth.namesrv}, {@code -Dtarget.auth.broker}).
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class Acl2Test {

    static final String ROOT = "rocketmq";
    static final String ROOT_PASSWORD = "12345678";

    @RegisterExtension
    static final FerroMQExtension FERRO = new FerroMQExtension(FerroMQExtension.E2E_BROKER_CONF
        + "authenticationEnabled=true\n"
        + "authenticationMetadataProvider=org.apache.rocketmq.auth.authentication.provider.LocalAuthenticationMetadataProvider\n"
        + "authorizationEnabled=true\n"
        + "authorizationMetadataProvider=org.apache.rocketmq.auth.authorization.provider.LocalAuthorizationMetadataProvider\n"
        + "initAuthenticationUser={\"username\":\"" + ROOT + "\",\"password\":\"" + ROOT_PASSWORD + "\"}\n",
        "target.auth");

    static Clients rootClients;
    static DefaultMQAdminExt admin;
    static MqAdmin mqadmin;
    final String uid = Clients.uid();

    static AclClientRPCHook hook(String user, String password) {
        return new AclClientRPCHook(new SessionCredentials(user, password));
    }

    @BeforeAll
    static void start() throws Exception {
        rootClients = new Clients(FERRO.server().namesrvAddr(), hook(ROOT, ROOT_PASSWORD));
        admin = rootClients.admin();
        mqadmin = new MqAdmin(FERRO.server().namesrvAddr(), ROOT, ROOT_PASSWORD);
    }

    @AfterAll
    static void stop() {
        if (rootClients != null) {
            rootClients.close();
        }
        if (mqadmin != null) {
            mqadmin.close();
        }
    }

    static String broker() {
        return FERRO.server().brokerAddr();
    }

    /** The broker's refusal of a send, which the client wraps in an MQClientException. */
    static MQBrokerException refusedSend(DefaultMQProducer p, String topic) {
        Exception e = assertThrows(Exception.class,
            () -> p.send(new Message(topic, "x".getBytes(StandardCharsets.UTF_8))),
            "a send to " + topic + " passed");
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof MQBrokerException b) {
                return b;
            }
        }
        throw new AssertionError("the send failed without the broker's answer", e);
    }

    @Test
    void mqadminManagesUsersAndPoliciesThatDecideWhatTheJavaClientMayDo() throws Exception {
        String user = "alice" + uid;
        String orders = "acl-orders-" + uid;
        String payments = "acl-payments-" + uid;
        String group = "acl-billing-" + uid;
        for (String topic : List.of(orders, payments)) {
            TopicConfig config = new TopicConfig(topic, 2, 2);
            admin.createAndUpdateTopicConfig(broker(), config);
        }
        MqAdmin.Result created = mqadmin.ok("createUser", "-b", broker(), "-u", user, "-p", "alice-password");
        assertTrue(created.output().contains("create user to " + broker() + " success."), created.describe());
        mqadmin.ok("createAcl", "-b", broker(), "-s", "User:" + user, "-r", "Topic:" + orders + ",Group:" + group,
            "-a", "Pub,Sub", "-d", "Allow");

        MqAdmin.Result shown = mqadmin.ok("getUser", "-b", broker(), "-u", user);
        assertTrue(shown.lines().stream().anyMatch(l -> l.startsWith(user) && l.contains("Normal") && l.contains("enable")),
            shown.describe());
        MqAdmin.Result acls = mqadmin.ok("listAcl", "-b", broker(), "-s", user);
        assertTrue(acls.output().contains("Topic:" + orders) && acls.output().contains("Group:" + group)
            && acls.output().contains("Custom") && acls.output().contains("Allow"), acls.describe());

        Clients alice = new Clients(FERRO.server().namesrvAddr(), hook(user, "alice-password"));
        try {
            DefaultMQProducer producer = alice.producer("acl-pg-" + uid);
            assertEquals(SendStatus.SEND_OK, Clients.sendWhenRouted(producer,
                new Message(orders, "paid".getBytes(StandardCharsets.UTF_8)), null).getSendStatus());
            MQBrokerException denied = refusedSend(producer, payments);
            assertEquals(16, denied.getResponseCode());
            assertTrue(denied.getErrorMessage().contains("User:" + user + " has no permission to access Topic:"
                + payments + " from 127.0.0.1, no matched policies."), denied.getErrorMessage());

            BlockingQueue<String> got = new LinkedBlockingQueue<>();
            DefaultMQPushConsumer consumer = alice.pushConsumer(group, orders, (msgs, ctx) -> {
                msgs.forEach(m -> got.add(new String(m.getBody(), StandardCharsets.UTF_8)));
                return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
            });
            alice.start(consumer);
            assertEquals("paid", got.poll(45, TimeUnit.SECONDS), "alice's consumer of " + group + " got nothing");

            Clients anonymous = new Clients(FERRO.server().namesrvAddr());
            try {
                MQBrokerException unsigned = refusedSend(anonymous.producer("acl-anon-" + uid), orders);
                assertEquals(16, unsigned.getResponseCode());
                assertTrue(unsigned.getErrorMessage().contains("username cannot be null."), unsigned.getErrorMessage());
            } finally {
                anonymous.close();
            }
            Clients forger = new Clients(FERRO.server().namesrvAddr(), hook(user, "guessed"));
            try {
                MQBrokerException forged = refusedSend(forger.producer("acl-forger-" + uid), orders);
                assertTrue(forged.getErrorMessage().contains("check signature failed."), forged.getErrorMessage());
            } finally {
                forger.close();
            }

            // The admin API: the same tables, and a deny from this address decides over the allow.
            UserInfo info = admin.getUser(broker(), user);
            assertEquals("Normal", info.getUserType());
            admin.updateAcl(broker(), "User:" + user, List.of("Topic:" + orders), List.of("Pub"),
                List.of("127.0.0.1"), "Deny");
            MQBrokerException deny = refusedSend(producer, orders);
            assertTrue(deny.getErrorMessage().contains("Topic:" + orders + " from 127.0.0.1, the decision is deny."),
                deny.getErrorMessage());
            AclInfo acl = admin.getAcl(broker(), "User:" + user);
            assertNotNull(acl);
            admin.deleteAcl(broker(), "User:" + user, "Topic:" + orders);
            List<AclInfo> left = admin.listAcl(broker(), user, null);
            assertEquals(1, left.size());
            assertTrue(left.get(0).getPolicies().get(0).getEntries().stream()
                .noneMatch(e -> e.getResource().equals("Topic:" + orders)), "the orders entry is still there");

            mqadmin.ok("updateUser", "-b", broker(), "-u", user, "-s", "disable");
            assertTrue(refusedSend(producer, orders).getErrorMessage().contains("User:" + user + " is disabled."));
            mqadmin.ok("deleteUser", "-b", broker(), "-u", user);
            assertNull(admin.getUser(broker(), user));
            assertTrue(refusedSend(producer, orders).getErrorMessage().contains("User:" + user + " is not found."));
        } finally {
            alice.close();
        }
    }

    @Test
    void aNormalUserCannotMakeUsersAndUnsignedMqadminIsRefused() throws Exception {
        String user = "bob" + uid;
        admin.createUser(broker(), user, "bob-password", "Normal");
        Clients bob = new Clients(FERRO.server().namesrvAddr(), hook(user, "bob-password"));
        try {
            DefaultMQAdminExt bobAdmin = bob.admin();
            MQBrokerException refused = assertThrows(MQBrokerException.class,
                () -> bobAdmin.createUser(broker(), "eve" + uid, "eve-password", "Super"));
            assertEquals(16, refused.getResponseCode());
            assertTrue(refused.getErrorMessage().contains("User:" + user + " has no permission to access Cluster:"),
                refused.getErrorMessage());
        } finally {
            bob.close();
        }
        try (MqAdmin unsigned = new MqAdmin(FERRO.server().namesrvAddr())) {
            MqAdmin.Result r = unsigned.run("listUser", "-b", broker());
            assertTrue(r.output().contains("username cannot be null"), r.describe());
        }
        admin.deleteUser(broker(), user);
    }
}
