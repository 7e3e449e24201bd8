package interop

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/admin"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// apacheE2EConf is the broker configuration of Apache RocketMQ's e2e suite
// (the one the Go client's admin examples run against).
const apacheE2EConf = "autoCreateTopicEnable=false\nenablePropertyFilter=true\nflushDiskType=SYNC_FLUSH\nmaxMessageSize=5242880\n"

// newAdmin creates a v2.1.2 admin client on the broker's name server; it is
// closed in t.Cleanup.
func newAdmin(t *testing.T, nsAddr string) admin.Admin {
	t.Helper()
	a, err := admin.NewAdmin(admin.WithResolver(primitive.NewPassthroughResolver([]string{nsAddr})))
	if err != nil {
		t.Fatalf("admin.NewAdmin: %v", err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// fetchQueues is FetchPublishMessageQueues with a bounded timeout on the
// context (the v2.1.2 call itself ignores it and uses its own 3 s).
func fetchQueues(a admin.Admin, topic string) ([]*primitive.MessageQueue, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return a.FetchPublishMessageQueues(ctx, topic)
}

func fetchTopics(t *testing.T, a admin.Admin) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list, err := a.FetchAllTopicList(ctx)
	if err != nil {
		t.Fatalf("FetchAllTopicList: %v", err)
	}
	topics := append([]string(nil), list.TopicList...)
	sort.Strings(topics)
	return topics
}

// checkQueues asserts that mqs are exactly queues 0..n-1 of topic on broker-a.
func checkQueues(t *testing.T, topic string, mqs []*primitive.MessageQueue, n int) {
	t.Helper()
	if len(mqs) != n {
		t.Errorf("FetchPublishMessageQueues(%q) returned %d queues, want %d: %v", topic, len(mqs), n, mqs)
		return
	}
	ids := map[int]bool{}
	for _, mq := range mqs {
		if mq.Topic != topic || mq.BrokerName != "broker-a" {
			t.Errorf("FetchPublishMessageQueues(%q) returned queue %v, want topic %s on broker-a", topic, mq, topic)
		}
		ids[mq.QueueId] = true
	}
	for i := 0; i < n; i++ {
		if !ids[i] {
			t.Errorf("FetchPublishMessageQueues(%q) lacks queue id %d: %v", topic, i, mqs)
		}
	}
}

// TestAdminAPI drives the Go client's admin API (admin.NewAdmin) against a
// broker configured like Apache's e2e suite (autoCreateTopicEnable=false):
//   - the topic named after the cluster (clusterTopicEnable: 16 queues) and
//     the one named after the broker (brokerTopicEnable: 1 queue) have
//     publishable routes, as on an Apache broker;
//   - FetchAllTopicList lists them along with TBW102 and SCHEDULE_TOPIC_XXXX;
//   - CreateTopic(4/4) on the broker address gives a 4-queue route that a
//     producer can send to and a push consumer receive from (auto-creation is
//     off, so only the created topic makes this work);
//   - DeleteTopic on broker and name server removes it from the topic list;
//   - GetAllSubscriptionGroup answers and decodes.
func TestAdminAPI(t *testing.T) {
	captureClientLog(t)
	b := startBroker(t, brokerOpts{conf: apacheE2EConf})
	a := newAdmin(t, b.NamesrvAdr)

	// Routes of the cluster and broker topics.
	for _, c := range []struct {
		topic  string
		queues int
	}{{"DefaultCluster", 16}, {"broker-a", 1}} {
		var mqs []*primitive.MessageQueue
		var err error
		if !waitFor(10*time.Second, func() bool {
			mqs, err = fetchQueues(a, c.topic)
			return err == nil && len(mqs) > 0
		}) {
			t.Errorf("FetchPublishMessageQueues(%q) within 10s: %v, %d queues (Apache brokers register a topic named after "+
				"their cluster and one named after themselves: clusterTopicEnable/brokerTopicEnable)", c.topic, err, len(mqs))
			continue
		}
		checkQueues(t, c.topic, mqs, c.queues)
	}

	topics := fetchTopics(t, a)
	t.Logf("FetchAllTopicList: %v", topics)
	for _, want := range []string{"DefaultCluster", "broker-a", "TBW102", "SCHEDULE_TOPIC_XXXX"} {
		if !contains(topics, want) {
			t.Errorf("FetchAllTopicList lacks %q: %v", want, topics)
		}
	}

	// CreateTopic on the broker.
	topic := uniq(t, "T")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.CreateTopic(ctx, admin.WithTopicCreate(topic), admin.WithBrokerAddrCreate(b.BrokerAddr),
		admin.WithReadQueueNums(4), admin.WithWriteQueueNums(4)); err != nil {
		t.Fatalf("CreateTopic(%s, broker %s, 4/4): %v", topic, b.BrokerAddr, err)
	}
	created := time.Now()
	var mqs []*primitive.MessageQueue
	var err error
	if !waitFor(10*time.Second, func() bool {
		mqs, err = fetchQueues(a, topic)
		return err == nil && len(mqs) > 0
	}) {
		t.Fatalf("no route for the created topic %s within 10s of CreateTopic: %v", topic, err)
	}
	t.Logf("route of %s visible %v after CreateTopic", topic, time.Since(created).Round(time.Millisecond))
	checkQueues(t, topic, mqs, 4)
	if topics := fetchTopics(t, a); !contains(topics, topic) {
		t.Errorf("FetchAllTopicList lacks the created topic %s: %v", topic, topics)
	}

	// Send and receive on it.
	c := newCollector()
	group := uniq(t, "CG")
	startPushConsumer(t, b.NamesrvAdr, topic, c, consumerOpts{group: group, from: consumer.ConsumeFromFirstOffset})
	p := newProducer(t, b.NamesrvAdr)
	body := "admin-created-" + nonce()
	r := sendMsg(t, p, primitive.NewMessage(topic, []byte(body)))
	if r.MessageQueue == nil || r.MessageQueue.Topic != topic || r.MessageQueue.QueueId < 0 || r.MessageQueue.QueueId > 3 {
		t.Errorf("send result queue %v, want one of the 4 queues of %s", r.MessageQueue, topic)
	}
	if !c.waitAll([]string{body}, deliveryTimeout) {
		t.Fatalf("message sent to the admin-created topic not consumed within %v", deliveryTimeout)
	}
	if m := c.firstMsg(body); m.Topic != topic || m.MsgId != r.MsgID {
		t.Errorf("received topic %q msgId %s, want %s and %s", m.Topic, m.MsgId, topic, r.MsgID)
	}

	// DeleteTopic on broker and name server.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if err := a.DeleteTopic(ctx2, admin.WithTopicDelete(topic), admin.WithBrokerAddrDelete(b.BrokerAddr),
		admin.WithNameSrvAddr([]string{b.NamesrvAdr})); err != nil {
		t.Fatalf("DeleteTopic(%s): %v", topic, err)
	}
	var after []string
	if !waitFor(5*time.Second, func() bool {
		after = fetchTopics(t, a)
		return !contains(after, topic)
	}) {
		t.Errorf("FetchAllTopicList still lists %s 5s after DeleteTopic: %v", topic, after)
	}
	if routeExists(b.NamesrvAdr, topic) {
		t.Errorf("the name server still has a route for %s after DeleteTopic", topic)
	}
	for _, keep := range []string{"DefaultCluster", "broker-a", "TBW102"} {
		if !contains(after, keep) {
			t.Errorf("FetchAllTopicList lost %q after deleting %s: %v", keep, topic, after)
		}
	}

	// GetAllSubscriptionGroup.
	ctx3, cancel3 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel3()
	groups, err := a.GetAllSubscriptionGroup(ctx3, b.BrokerAddr, 3*time.Second)
	if err != nil {
		t.Fatalf("GetAllSubscriptionGroup(%s): %v", b.BrokerAddr, err)
	}
	names := make([]string, 0, len(groups.SubscriptionGroupTable))
	for name := range groups.SubscriptionGroupTable {
		names = append(names, name)
	}
	sort.Strings(names)
	_, known := groups.SubscriptionGroupTable[group]
	t.Logf("GetAllSubscriptionGroup: %d groups %v, dataVersion %+v (consumer group %s listed: %v)",
		len(names), names, groups.DataVersion, group, known)
}
