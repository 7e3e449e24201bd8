package interop

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// TestNamespace: the Go client's WithNamespace wraps names as "<ns>%<name>" (its retry
// topic "%RETRY%<ns>%<group>", its dead letters "%DLQ%<ns>%<group>"), and the broker keeps
// them as Apache's does: two namespaces with the same topic and group names stay apart, a
// retried message comes back to its namespaced group, a failing one lands in its namespaced
// dead-letter topic, and the admin CLI lists the namespaced names.
func TestNamespace(t *testing.T) {
	t.Parallel()
	captureClientLog(t)
	conf := "messageDelayLevel=1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s\n"
	b := startBroker(t, brokerOpts{conf: conf})
	topic := uniq(t, "NsT")
	group := uniq(t, "NsG")
	prefix := "ns-" + nonce()

	// tenant-a's group retries each message once; tenant-b's fails every time (one retry
	// allowed), so its messages end in its dead-letter topic.
	a := newRetryRecorder(prefix+"-a", func(_ string, n int) consumer.ConsumeResult {
		if n == 1 {
			return consumer.ConsumeRetryLater
		}
		return consumer.ConsumeSuccess
	})
	bRec := newRetryRecorder(prefix+"-b", func(string, int) consumer.ConsumeResult { return consumer.ConsumeRetryLater })
	// The first sends create the namespaced topics; the groups then start from the first offset.
	pa := newProducer(t, b.NamesrvAdr, producer.WithNamespace("tenant-a"))
	pb := newProducer(t, b.NamesrvAdr, producer.WithNamespace("tenant-b"))
	bodiesA := bodiesN(prefix+"-a", 3)
	bodiesB := bodiesN(prefix+"-b", 3)
	sendSyncN(t, pa, topic, bodiesA)
	sendSyncN(t, pb, topic, bodiesB)

	startConsumer(t, b.NamesrvAdr, topic, consumer.MessageSelector{}, a.handle, consumerOpts{
		group: group, from: consumer.ConsumeFromFirstOffset,
		extra: []consumer.Option{consumer.WithNamespace("tenant-a")},
	})
	startConsumer(t, b.NamesrvAdr, topic, consumer.MessageSelector{}, bRec.handle, consumerOpts{
		group: group, from: consumer.ConsumeFromFirstOffset,
		extra: []consumer.Option{consumer.WithNamespace("tenant-b"), consumer.WithMaxReconsumeTimes(1)},
	})

	if !waitFor(60*time.Second, func() bool {
		for _, body := range bodiesA {
			if len(a.deliveries(body)) < 2 {
				return false
			}
		}
		for _, body := range bodiesB {
			if len(bRec.deliveries(body)) < 2 {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("deliveries: tenant-a %v, tenant-b %v (want each message twice: once, then from the retry topic)",
			counts(a, bodiesA), counts(bRec, bodiesB))
	}
	for _, body := range bodiesA {
		if got := bRec.deliveries(body); len(got) != 0 {
			t.Errorf("tenant-b's group received tenant-a's %s", body)
		}
		ds := a.deliveries(body)
		if ds[1].msg.ReconsumeTimes != 1 {
			t.Errorf("%s: the second delivery has ReconsumeTimes %d, want 1 (from %%RETRY%%tenant-a%%%s)", body, ds[1].msg.ReconsumeTimes, group)
		}
	}

	// tenant-b's messages failed twice: they are dead letters of tenant-b's group only.
	dlq := "%DLQ%tenant-b%" + group
	if !waitFor(30*time.Second, func() bool { return routeExists(b.NamesrvAdr, dlq) }) {
		t.Fatalf("no route for %s: the dead letters of the namespaced group must go there", dlq)
	}
	dc := newCollector()
	startPushConsumer(t, b.NamesrvAdr, dlq, dc, consumerOpts{from: consumer.ConsumeFromFirstOffset})
	if !dc.waitAll(bodiesB, deliveryTimeout) {
		t.Fatalf("%s did not hold tenant-b's dead letters: %s", dlq, compare(bodiesB, dc.snapshot()))
	}

	out, err := exec.Command(ferromqBin(t), "admin", "-n", b.NamesrvAdr, "topicList").CombinedOutput()
	if err != nil {
		t.Fatalf("ferromq admin topicList: %v\n%s", err, out)
	}
	for _, want := range []string{"tenant-a%" + topic, "tenant-b%" + topic, "%RETRY%tenant-a%" + group, "%RETRY%tenant-b%" + group, dlq} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("topicList does not list %s:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "\n"+topic+"\n") {
		t.Errorf("topicList lists the bare topic %s: the namespaced clients must not have created it", topic)
	}
}

func counts(r *retryRecorder, bodies []string) []int {
	var n []int
	for _, b := range bodies {
		n = append(n, len(r.deliveries(b)))
	}
	return n
}
