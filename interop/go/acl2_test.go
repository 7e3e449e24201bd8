package interop

import (
	"fmt"
	"strings"
	"testing"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// TestACL2: with authenticationEnabled and authorizationEnabled (Apache 5.3's ACL 2.0) the
// official Go client's credentials are a user's name and password. A super user made at
// start (initAuthenticationUser) creates the user and its policy over the wire (codes 3001
// and 3006, signed as the clients sign); the user may publish and consume what its policy
// allows, and everything else is refused with Apache's messages.
func TestACL2(t *testing.T) {
	captureClientLog(t)
	allowed := uniq(t, "Allowed")
	denied := uniq(t, "Denied")
	group := uniq(t, "GroupAcl2")
	b := startBroker(t, brokerOpts{conf: "authenticationEnabled=true\nauthorizationEnabled=true\n" +
		`initAuthenticationUser={"username":"go-root","password":"go-root-secret"}` + "\n"})
	asRoot := func(code int, ext map[string]string, body string) {
		t.Helper()
		if r := signedInvokeBody(t, b.BrokerAddr, code, ext, []byte(body), "go-root", "go-root-secret"); r.Code != 0 {
			t.Fatalf("request %d as the super user: code %d remark %q", code, r.Code, r.Remark)
		}
	}
	for _, topic := range []string{allowed, denied} {
		asRoot(17, map[string]string{"topic": topic, "defaultTopic": "TBW102", "readQueueNums": "4",
			"writeQueueNums": "4", "perm": "6", "topicFilterType": "SINGLE_TAG", "topicSysFlag": "0", "order": "false"}, "")
	}
	asRoot(3001, map[string]string{"username": "go-app"}, `{"username":"go-app","password":"go-app-secret"}`)
	asRoot(3006, map[string]string{"subject": "User:go-app"}, fmt.Sprintf(`{"subject":"User:go-app","policies":[{"entries":[`+
		`{"resource":"Topic:%s","actions":["Pub","Sub"],"decision":"Allow"},`+
		`{"resource":"Group:%s","actions":["Sub"],"decision":"Allow"}]}]}`, allowed, group))

	app := primitive.Credentials{AccessKey: "go-app", SecretKey: "go-app-secret"}
	p := newProducer(t, b.NamesrvAdr, producer.WithCredentials(app), producer.WithRetry(0))
	bodies := bodiesN("acl2-"+nonce(), 10)
	sendSyncN(t, p, allowed, bodies)
	c := newCollector()
	startPushConsumer(t, b.NamesrvAdr, allowed, c, consumerOpts{
		group: group,
		from:  consumer.ConsumeFromFirstOffset,
		extra: []consumer.Option{consumer.WithCredentials(app)},
	})
	if !c.waitAll(bodies, deliveryTimeout) {
		t.Fatalf("the user's consumer did not receive: %s", compare(bodies, c.snapshot()))
	}

	refused := func(p syncSender, topic, want string) { expectRefused(t, p, topic, want) }
	refused(p, denied, "User:go-app has no permission to access Topic:"+denied+" from 127.0.0.1, no matched policies. The request needs Pub.")
	wrong := newProducer(t, b.NamesrvAdr, producer.WithRetry(0),
		producer.WithCredentials(primitive.Credentials{AccessKey: "go-app", SecretKey: "not-the-password"}))
	refused(wrong, allowed, "check signature failed.")
	anonymous := newProducer(t, b.NamesrvAdr, producer.WithRetry(0))
	refused(anonymous, allowed, "username cannot be null.")

	// The user's own request for users is refused: it holds no policy on the cluster.
	r := signedInvokeBody(t, b.BrokerAddr, 3005, map[string]string{}, nil, "go-app", "go-app-secret")
	if r.Code != 16 || !strings.Contains(r.Remark, "User:go-app has no permission to access Cluster:DefaultCluster") {
		t.Fatalf("AUTH_LIST_USER as a normal user: code %d remark %q", r.Code, r.Remark)
	}
	got := signedInvokeBody(t, b.BrokerAddr, 3004, map[string]string{"username": "go-app"}, nil, "go-root", "go-root-secret")
	if got.Code != 0 || !strings.Contains(string(got.Body), `"userType":"Normal"`) {
		t.Fatalf("AUTH_GET_USER: code %d body %s", got.Code, got.Body)
	}
}
