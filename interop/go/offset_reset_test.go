package interop

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
)

// TestResetOffsetByTimestamp: a running push consumer has consumed N
// messages; an admin request INVOKE_BROKER_TO_RESET_OFFSET (222: topic, group,
// timestamp before the first message, isForce=true), sent raw to the broker,
// must answer code 0, rewind the group's offsets and push
// RESET_CONSUMER_CLIENT_OFFSET (220, body offsetTable) to the group's
// clients. v2.1.2 then suspends, drops its queues, waits 10 s, adopts the
// offsets and resumes: it receives each of the N messages again.
func TestResetOffsetByTimestamp(t *testing.T) {
	t.Parallel()
	captureClientLog(t)
	b := startBroker(t, brokerOpts{})
	topic := uniq(t, "T")
	group := uniq(t, "CG")
	p := newProducer(t, b.NamesrvAdr)
	sendSyncN(t, p, topic, []string{"warmup-" + nonce()})

	c := newCollector()
	c.ignore = func(body string) bool { return strings.HasPrefix(body, "warmup-") }
	startPushConsumer(t, b.NamesrvAdr, topic, c, consumerOpts{group: group, from: consumer.ConsumeFromFirstOffset})
	time.Sleep(1 * time.Second)

	resetTo := time.Now().Add(-50 * time.Millisecond) // before the first test message is stored
	bodies := bodiesN("reset-"+nonce(), 40)
	sendSyncN(t, p, topic, bodies)
	if !c.waitAll(bodies, deliveryTimeout) {
		t.Fatalf("consumer did not get the %d messages within %v: %s", len(bodies), deliveryTimeout, compare(bodies, c.snapshot()))
	}
	time.Sleep(1 * time.Second)
	expectExactly(t, "before the reset", bodies, c.snapshot())

	ext := map[string]string{
		"topic":     topic,
		"group":     group,
		"timestamp": strconv.FormatInt(resetTo.UnixMilli(), 10),
		"isForce":   "true",
	}
	resp, err := rawInvoke(b.BrokerAddr, codeInvokeResetOffset, ext, nil, 10*time.Second)
	if err != nil {
		t.Fatalf("INVOKE_BROKER_TO_RESET_OFFSET (222) %v: %v", ext, err)
	}
	t.Logf("INVOKE_BROKER_TO_RESET_OFFSET (222) %v → %s", ext, resp)
	if resp.Code != 0 {
		t.Fatalf("INVOKE_BROKER_TO_RESET_OFFSET (222) answered code %d (%q), want 0", resp.Code, resp.Remark)
	}
	resetAt := time.Now()

	again := func() []string {
		snap := c.snapshot()
		var missing []string
		for _, body := range bodies {
			if snap[body] < 2 {
				missing = append(missing, body)
			}
		}
		return missing
	}
	if !waitFor(45*time.Second, func() bool { return len(again()) == 0 }) {
		missing := again()
		t.Errorf("within 45s of the reset, %d of the %d messages were not consumed again: %s (the client must receive "+
			"RESET_CONSUMER_CLIENT_OFFSET 220 with the offset table and the group's committed offsets must be rewound)",
			len(missing), len(bodies), abbrev(missing))
	} else {
		t.Logf("all %d messages consumed again %v after the reset request (v2.1.2 waits 10 s before resuming)",
			len(bodies), time.Since(resetAt).Round(time.Millisecond))
	}
}
