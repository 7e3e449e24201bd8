package interop

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// TestTimerMessages (5.x timer messages, §5.3; v2.1.2 has no helper, the
// properties are set by hand):
//   - TIMER_DELIVER_MS = an absolute time 3 s ahead → received at that time ± 0.3 s;
//   - __STARTDELIVERTIME (the 5.x proxy's name for it) = the same time → same;
//   - TIMER_DELAY_SEC = "3" → received 3 s ± 0.3 s after the send;
//   - a timer more than 3 days ahead (timerMaxDelaySec) is refused: SendSync
//     returns an error and nothing is delivered.
//
// The absolute-time property arrives with the message, unchanged (Apache
// keeps the stored properties of a timer message when it delivers it).
//
// Apache rounds deliver times down to timerPrecisionMs (1 s). To accept both
// an exact and a whole-second implementation within ± 0.3 s, the absolute
// target is a whole second and the sends happen just after a whole second.
func TestTimerMessages(t *testing.T) {
	captureClientLog(t)
	b := startBroker(t, brokerOpts{})
	topic := uniq(t, "T")
	p := newProducer(t, b.NamesrvAdr)
	warm := "warmup-" + nonce()
	sendSyncN(t, p, topic, []string{warm})
	c := newCollector()
	startPushConsumer(t, b.NamesrvAdr, topic, c, consumerOpts{from: consumer.ConsumeFromFirstOffset})
	if !c.waitAll([]string{warm}, deliveryTimeout) {
		t.Fatalf("warm-up message not consumed within %v", deliveryTimeout)
	}

	const tol = 300 * time.Millisecond
	n := nonce()
	bodyAbs, bodyStart, bodyRel := "timer-abs-"+n, "timer-start-"+n, "timer-rel-"+n
	// Refusals first (a broken broker might take a while to answer them).
	tooFar := []struct{ key, val, body string }{
		{"TIMER_DELIVER_MS", strconv.FormatInt(time.Now().Add(73*time.Hour).UnixMilli(), 10), "timer-far-abs-" + n},
		{"TIMER_DELAY_SEC", strconv.Itoa(3*24*3600 + 3600), "timer-far-rel-" + n},
	}
	for _, tf := range tooFar {
		m := primitive.NewMessage(topic, []byte(tf.body))
		m.WithProperty(tf.key, tf.val)
		r, err := trySend(p, m)
		if err == nil {
			t.Errorf("%s=%s (more than 3 days ahead) was accepted: %s; want SendSync to fail (Apache: code 13 MESSAGE_ILLEGAL, "+
				"timer message illegal)", tf.key, tf.val, r)
		} else {
			t.Logf("%s=%s refused: %v", tf.key, tf.val, err)
		}
	}

	boundary := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(boundary.Add(20 * time.Millisecond)))
	target := boundary.Add(3 * time.Second)
	targetMs := strconv.FormatInt(target.UnixMilli(), 10)
	mAbs := primitive.NewMessage(topic, []byte(bodyAbs))
	mAbs.WithProperty("TIMER_DELIVER_MS", targetMs)
	mStart := primitive.NewMessage(topic, []byte(bodyStart))
	mStart.WithProperty("__STARTDELIVERTIME", targetMs)
	mRel := primitive.NewMessage(topic, []byte(bodyRel))
	mRel.WithProperty("TIMER_DELAY_SEC", "3")
	sendMsg(t, p, mAbs)
	sendMsg(t, p, mStart)
	relSent := time.Now()
	sendMsg(t, p, mRel)
	if el := time.Since(boundary); el > 500*time.Millisecond {
		t.Logf("note: the three sends ended %v after the whole second", el.Round(time.Millisecond))
	}

	if !c.waitAll([]string{bodyAbs, bodyStart, bodyRel}, 15*time.Second) {
		t.Errorf("timer messages not delivered within 15s: %s", compare([]string{bodyAbs, bodyStart, bodyRel}, c.snapshot()))
	}
	time.Sleep(1 * time.Second)
	for _, abs := range []struct{ key, body string }{{"TIMER_DELIVER_MS", bodyAbs}, {"__STARTDELIVERTIME", bodyStart}} {
		at, ok := c.receivedAt(abs.body)
		if !ok {
			continue
		}
		off := at.Sub(target)
		m := c.firstMsg(abs.body)
		t.Logf("%s: received %v relative to the deliver time (topic %s, %s=%q, TIMER_OUT_MS=%q, REAL_TOPIC=%q)", abs.key,
			off.Round(time.Millisecond), m.Topic, abs.key, m.GetProperty(abs.key), m.GetProperty("TIMER_OUT_MS"), m.GetProperty("REAL_TOPIC"))
		if off < -tol || off > tol {
			t.Errorf("%s message received %v relative to its deliver time, want ± %v", abs.key, off.Round(time.Millisecond), tol)
		}
		if m.Topic != topic {
			t.Errorf("%s message delivered with topic %q, want %q", abs.key, m.Topic, topic)
		}
		if got := m.GetProperty(abs.key); got != targetMs {
			t.Errorf("%s message delivered with %s=%q, want the value sent, %q; properties: %v", abs.key, abs.key, got, targetMs, m.GetProperties())
		}
	}
	if at, ok := c.receivedAt(bodyRel); ok {
		lat := at.Sub(relSent)
		t.Logf("TIMER_DELAY_SEC=3: received %v after the send", lat.Round(time.Millisecond))
		if lat < 3*time.Second-tol || lat > 3*time.Second+tol {
			t.Errorf("TIMER_DELAY_SEC=3 message received %v after the send, want 3s ± %v", lat.Round(time.Millisecond), tol)
		}
	}
	for body, k := range c.snapshot() {
		if strings.HasPrefix(body, "timer-far-") {
			t.Errorf("refused timer message %s was delivered", body)
		}
		if k > 1 {
			t.Errorf("%s delivered %d times", body, k)
		}
	}
}
