package interop

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// TestWritePermDrain: how operators drain a broker before a restart. After
// `ferromq admin wipeWritePerm -b <broker>` (WIPE_WRITE_PERM_OF_BROKER to the name server,
// as Apache's mqadmin sends it) the broker's routes are read-only, so the official Go
// client, routing afresh, has no queue to send to; after addWritePerm it sends again.
func TestWritePermDrain(t *testing.T) {
	t.Parallel()
	captureClientLog(t)
	b := startBroker(t, brokerOpts{})
	topic := uniq(t, "Drain")
	sendSyncN(t, newProducer(t, b.NamesrvAdr), topic, []string{"before-" + nonce()})

	admin := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(ferromqBin(t), append([]string{"admin", "-n", b.NamesrvAdr}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ferromq admin %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	send := func() error {
		p := newProducer(t, b.NamesrvAdr, producer.WithRetry(0))
		_, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte("x")))
		return err
	}
	if out := admin("wipeWritePerm", "-b", "broker-a"); !strings.Contains(out, "wipe write perm of broker[broker-a]") || strings.Contains(out, "OK, 0") {
		t.Fatalf("wipeWritePerm: %s", out)
	}
	if err := send(); err == nil {
		t.Fatalf("a producer routed after wipeWritePerm sent to the drained broker")
	} else {
		t.Logf("while drained: %v", err)
	}
	if out := admin("addWritePerm", "-b", "broker-a"); !strings.Contains(out, "add write perm of broker[broker-a]") {
		t.Fatalf("addWritePerm: %s", out)
	}
	if err := send(); err != nil {
		t.Fatalf("after addWritePerm the send still fails: %v", err)
	}
}
