package interop

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

const aclFile = `globalWhiteRemoteAddresses:
  - 10.10.103.*

accounts:
  - accessKey: ferromq-app
    secretKey: app-secret-1
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - %[1]s=PUB|SUB
      - %[2]s=DENY
      %[3]s

  - accessKey: ferromq-admin
    secretKey: admin-secret
    admin: true
    defaultTopicPerm: PUB|SUB
    defaultGroupPerm: PUB|SUB
`

// signedInvoke sends a request signed as the clients sign it: HMAC-SHA1 over the
// extension field values in key order, then the body (written here independently of
// the broker's code).
func signedInvoke(t *testing.T, addr string, code int, ext map[string]string, ak, sk string) *remotingCmd {
	t.Helper()
	return signedInvokeBody(t, addr, code, ext, nil, ak, sk)
}

// signedInvokeBody is signedInvoke with a body, which the signature covers after the fields.
func signedInvokeBody(t *testing.T, addr string, code int, ext map[string]string, body []byte, ak, sk string) *remotingCmd {
	t.Helper()
	ext["AccessKey"] = ak
	keys := make([]string, 0, len(ext))
	for k := range ext {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	mac := hmac.New(sha1.New, []byte(sk))
	for _, k := range keys {
		mac.Write([]byte(ext[k]))
	}
	mac.Write(body)
	ext["Signature"] = base64.StdEncoding.EncodeToString(mac.Sum(nil))
	resp, err := rawInvoke(addr, code, ext, body, 5*time.Second)
	if err != nil {
		t.Fatalf("request %d: %v", code, err)
	}
	return resp
}

// TestPlainACL: with aclEnable=true the official Go client's credentials option works
// (send and consume), and wrong keys, missing keys, denied topics and non-admin calls of
// admin codes are refused as Apache refuses them; the file is reloaded when it changes.
func TestPlainACL(t *testing.T) {
	captureClientLog(t)
	allowed := uniq(t, "Allowed")
	denied := uniq(t, "Denied")
	later := uniq(t, "Later")
	dir := t.TempDir()
	aclPath := filepath.Join(dir, "plain_acl.yml")
	writeACL := func(extra string) {
		if err := os.WriteFile(aclPath, []byte(fmt.Sprintf(aclFile, allowed, denied, extra)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeACL("")
	b := startBroker(t, brokerOpts{conf: "aclEnable=true\nplainAclFile=" + aclPath + "\n"})
	app := primitive.Credentials{AccessKey: "ferromq-app", SecretKey: "app-secret-1"}

	// The credentials option works for sending and consuming.
	p := newProducer(t, b.NamesrvAdr, producer.WithCredentials(app))
	bodies := bodiesN("acl-"+nonce(), 10)
	sendSyncN(t, p, allowed, bodies)
	c := newCollector()
	startPushConsumer(t, b.NamesrvAdr, allowed, c, consumerOpts{
		from:  consumer.ConsumeFromFirstOffset,
		extra: []consumer.Option{consumer.WithCredentials(app)},
	})
	if !c.waitAll(bodies, deliveryTimeout) {
		t.Fatalf("consumer with credentials did not receive: %s", compare(bodies, c.snapshot()))
	}

	refused := func(p syncSender, topic, want string) { expectRefused(t, p, topic, want) }
	// A topic the account may not publish to.
	refused(p, denied, "No permission for topic:"+denied)
	// The wrong secret.
	wrong := newProducer(t, b.NamesrvAdr, producer.WithCredentials(primitive.Credentials{AccessKey: "ferromq-app", SecretKey: "not-the-secret"}))
	refused(wrong, allowed, "Check signature failed for accessKey=ferromq-app")
	// No credentials at all; an unknown key.
	anonymous := newProducer(t, b.NamesrvAdr, producer.WithRetry(0))
	refused(anonymous, allowed, "No accessKey is configured")
	stranger := newProducer(t, b.NamesrvAdr, producer.WithCredentials(primitive.Credentials{AccessKey: "nobody-at-all", SecretKey: "whatever-secret"}))
	refused(stranger, allowed, "No acl config for nobody-at-all")

	// Admin codes: refused to the application account, allowed to the admin (code 1,
	// SYSTEM_ERROR, as Apache answers ACL refusals).
	create := func(ak, sk string) *remotingCmd {
		return signedInvoke(t, b.BrokerAddr, 17, map[string]string{
			"topic": uniq(t, "Created"), "defaultTopic": "TBW102", "readQueueNums": "4",
			"writeQueueNums": "4", "perm": "6", "topicFilterType": "SINGLE_TAG", "topicSysFlag": "0", "order": "false",
		}, ak, sk)
	}
	if r := create("ferromq-app", "app-secret-1"); r.Code != 1 || !strings.Contains(r.Remark, "Need admin permission for request code=17") {
		t.Fatalf("non-admin UPDATE_AND_CREATE_TOPIC: code %d remark %q", r.Code, r.Remark)
	}
	if r := create("ferromq-admin", "admin-secret"); r.Code != 0 {
		t.Fatalf("admin UPDATE_AND_CREATE_TOPIC: code %d remark %q", r.Code, r.Remark)
	}
	if out := b.Output(); !strings.Contains(out, "request refused") || !strings.Contains(out, "AclException") {
		t.Fatalf("refusals are not logged with their reason")
	}

	// The file is reloaded when it changes: a new permission takes effect without a restart.
	refused(p, later, "No permission for topic:"+later)
	writeACL("- " + later + "=PUB")
	if !waitFor(15*time.Second, func() bool {
		_, err := p.SendSync(context.Background(), primitive.NewMessage(later, []byte("y")))
		return err == nil
	}) {
		t.Fatalf("the reloaded ACL file did not allow %s", later)
	}
}

type syncSender interface {
	SendSync(context.Context, ...*primitive.Message) (*primitive.SendResult, error)
}

// expectRefused: a send to topic fails with an error containing want.
func expectRefused(t *testing.T, p syncSender, topic, want string) {
	t.Helper()
	_, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte("x")))
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("send to %s: want an error containing %q, got %v", topic, want, err)
	}
}
