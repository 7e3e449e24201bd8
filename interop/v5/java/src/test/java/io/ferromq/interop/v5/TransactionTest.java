package io.ferromq.interop.v5;

import static io.ferromq.interop.v5.Clients.INVISIBLE;
import static io.ferromq.interop.v5.Clients.describe;
import static io.ferromq.interop.v5.Clients.describeAll;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CopyOnWriteArrayList;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.apache.rocketmq.client.apis.producer.SendReceipt;
import org.apache.rocketmq.client.apis.producer.Transaction;
import org.apache.rocketmq.client.apis.producer.TransactionResolution;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Transactional messages: one committed, one rolled back, one left open (UNKNOWN) that the
 * server's check-back resolves through the producer's TransactionChecker (COMMIT). Exactly the
 * committed two are consumed.
 */
@ExtendWith(V5Extension.class)
class TransactionTest {

    @Test
    void commitRollbackAndCheckBack() throws Exception {
        String topic = Resources.TOPIC_TX;
        List<String> checked = new CopyOnWriteArrayList<>();
        Producer producer = Clients.producer(Clients.config(), m -> {
            String body = Clients.body(m);
            checked.add(body + "#" + String.join(",", m.getKeys()));
            return body.equals("tx-unknown") ? TransactionResolution.COMMIT : TransactionResolution.ROLLBACK;
        }, topic);
        SimpleConsumer consumer = Clients.simple(Resources.GROUP_TX, topic);
        try {
            List<String> ids = new ArrayList<>();
            for (String what : List.of("commit", "rollback", "unknown")) {
                Transaction tx = producer.beginTransaction();
                SendReceipt r = producer.send(Clients.message(topic, "tx-" + what).setTag("tx")
                    .setKeys("key-" + what).addProperty("outcome", what).build(), tx);
                ids.add(r.getMessageId().toString());
                switch (what) {
                    case "commit" -> tx.commit();
                    case "rollback" -> tx.rollback();
                    default -> { } // neither: the server asks the checker
                }
            }
            long start = System.currentTimeMillis();
            // Apache's default check-back (every 30 s, for halves older than 6 s) takes up to ~40 s
            // (apache-local.sh: every 2 s); leave room for a server with the defaults.
            List<Clients.Got> got = Clients.receiveUntil(consumer, INVISIBLE, true, Duration.ofSeconds(100),
                l -> l.size() >= 2);
            long resolvedAfter = System.currentTimeMillis() - start;
            got.addAll(Clients.receiveFor(consumer, INVISIBLE, true, Duration.ofSeconds(4)));
            Set<String> bodies = new TreeSet<>(Clients.bodies(got));
            assertEquals(Set.of("tx-commit", "tx-unknown"), bodies, "consumed:\n  " + describeAll(got)
                + "\nchecker calls: " + checked);
            assertEquals(2, got.size(), "each committed message once:\n  " + describeAll(got));
            for (Clients.Got g : got) {
                MessageView m = g.view();
                String what = Clients.body(m).substring(3);
                assertEquals(ids.get(what.equals("commit") ? 0 : 2), m.getMessageId().toString(),
                    "message id as at send " + describe(m));
                assertEquals("tx", m.getTag().orElse(null), describe(m));
                assertEquals(List.of("key-" + what), new ArrayList<>(m.getKeys()), describe(m));
                assertEquals(what, m.getProperties().get("outcome"), describe(m));
            }
            assertFalse(checked.isEmpty(), "the checker was never asked");
            assertTrue(checked.stream().allMatch(c -> c.equals("tx-unknown#key-unknown")),
                "only the open transaction is checked, with its body and keys: " + checked);
            System.out.printf("[tx] committed + checked-back messages consumed within %d ms; checker calls %s%n",
                resolvedAfter, checked);
        } finally {
            Clients.closeQuietly(consumer);
            Clients.closeQuietly(producer);
        }
    }
}
