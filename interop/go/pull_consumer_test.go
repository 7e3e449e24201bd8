package interop

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// TestPullConsumerManualOffsets: v2.1.2's pull consumer (rocketmq.NewPullConsumer)
// reading with PullFrom(queue, offset, n) at offsets chosen by the test:
// pages through each queue and gets exactly the sent messages at their
// offsets; re-reads from an earlier offset; an offset past the end gives
// OFFSET_MOVED (21) with nextBeginOffset = max offset; a pull at the end is
// held and woken by a new message; UpdateOffset + PersistOffset store the
// group's offsets on the broker (UPDATE_CONSUMER_OFFSET), visible with
// QUERY_CONSUMER_OFFSET and to a new instance of the group (CurrentOffset).
func TestPullConsumerManualOffsets(t *testing.T) {
	captureClientLog(t)
	b := startBroker(t, brokerOpts{})
	topic := uniq(t, "T")
	group := uniq(t, "PCG")
	p := newProducer(t, b.NamesrvAdr)
	bodies := bodiesN("pull-"+nonce(), 20)
	res := sendSyncN(t, p, topic, bodies)

	type entry struct {
		body   string
		offset int64
		msgID  string
	}
	perQueue := map[int][]entry{}
	queues := map[int]*primitive.MessageQueue{}
	for i, r := range res {
		q := r.MessageQueue.QueueId
		perQueue[q] = append(perQueue[q], entry{bodies[i], r.QueueOffset, r.MsgID})
		queues[q] = r.MessageQueue
	}

	pc, stop := startPullConsumer(t, b.NamesrvAdr, topic, consumer.MessageSelector{}, group,
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	pull := func(mq *primitive.MessageQueue, off int64, n int) *primitive.PullResult {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r, err := pc.PullFrom(ctx, mq, off, n)
		if err != nil {
			t.Fatalf("PullFrom(queue %d, offset %d, %d): %v", mq.QueueId, off, n, err)
		}
		return r
	}

	for q, want := range perQueue {
		mq := queues[q]
		maxOff := want[len(want)-1].offset + 1
		// Page through the queue 3 messages at a time.
		var got []*primitive.MessageExt
		off := int64(0)
		for i := 0; i < 20 && off < maxOff; i++ {
			r := pull(mq, off, 3)
			if r.Status != primitive.PullFound {
				t.Fatalf("queue %d offset %d: status %d, want FOUND (0)", q, off, r.Status)
			}
			msgs := r.GetMessageExts()
			if len(msgs) == 0 || len(msgs) > 3 {
				t.Fatalf("queue %d offset %d: %d messages for maxMsgNums 3", q, off, len(msgs))
			}
			if r.NextBeginOffset != off+int64(len(msgs)) || r.MinOffset != 0 || r.MaxOffset != maxOff {
				t.Errorf("queue %d offset %d: nextBeginOffset %d minOffset %d maxOffset %d, want %d, 0, %d",
					q, off, r.NextBeginOffset, r.MinOffset, r.MaxOffset, off+int64(len(msgs)), maxOff)
			}
			got = append(got, msgs...)
			off = r.NextBeginOffset
		}
		if len(got) != len(want) {
			t.Errorf("queue %d: paged %d messages, sent %d", q, len(got), len(want))
		}
		for i := 0; i < len(got) && i < len(want); i++ {
			if string(got[i].Body) != want[i].body || got[i].QueueOffset != want[i].offset || got[i].MsgId != want[i].msgID {
				t.Errorf("queue %d #%d: got %q offset %d msgId %s, want %q offset %d msgId %s",
					q, i, got[i].Body, got[i].QueueOffset, got[i].MsgId, want[i].body, want[i].offset, want[i].msgID)
			}
		}
		// Rewind: one message from an earlier offset.
		if len(want) >= 3 {
			r := pull(mq, want[2].offset, 1)
			if msgs := r.GetMessageExts(); r.Status != primitive.PullFound || len(msgs) != 1 || string(msgs[0].Body) != want[2].body {
				t.Errorf("queue %d: re-pull of offset %d returned status %d, %d messages, want exactly %q", q, want[2].offset, r.Status, len(msgs), want[2].body)
			}
		}
		// Past the end: OFFSET_MOVED with nextBeginOffset = max (no hold).
		begin := time.Now()
		r := pull(mq, maxOff+10, 1)
		if r.Status != primitive.PullOffsetIllegal || r.NextBeginOffset != maxOff {
			t.Errorf("queue %d: pull at offset %d (max %d) gave status %d nextBeginOffset %d, want OFFSET_MOVED (%d) and %d",
				q, maxOff+10, maxOff, r.Status, r.NextBeginOffset, primitive.PullOffsetIllegal, maxOff)
		}
		if el := time.Since(begin); el > 2*time.Second {
			t.Errorf("queue %d: pull past the end took %v (an illegal offset must be answered at once)", q, el.Round(time.Millisecond))
		}
	}

	// A pull at the end of a queue is held and woken by a new message.
	var q0 int
	for q := range perQueue {
		q0 = q
		break
	}
	mq0 := queues[q0]
	endOff := perQueue[q0][len(perQueue[q0])-1].offset + 1
	type pullOut struct {
		r   *primitive.PullResult
		err error
		at  time.Time
	}
	ch := make(chan pullOut, 1)
	go func() {
		r, err := pc.PullFrom(context.Background(), mq0, endOff, 1)
		ch <- pullOut{r, err, time.Now()}
	}()
	time.Sleep(1 * time.Second)
	mp := newProducer(t, b.NamesrvAdr, producer.WithQueueSelector(producer.NewManualQueueSelector()))
	late := fmt.Sprintf("pull-late-%s", nonce())
	m := primitive.NewMessage(topic, []byte(late))
	m.Queue = mq0
	sentAt := time.Now()
	if r := sendMsg(t, mp, m); r.MessageQueue.QueueId != q0 || r.QueueOffset != endOff {
		t.Fatalf("manual-queue send went to queue %d offset %d, want queue %d offset %d", r.MessageQueue.QueueId, r.QueueOffset, q0, endOff)
	}
	select {
	case out := <-ch:
		switch {
		case out.err != nil:
			t.Errorf("held pull at the end of queue %d: %v", q0, out.err)
		case out.r.Status != primitive.PullFound || len(out.r.GetMessageExts()) != 1 || string(out.r.GetMessageExts()[0].Body) != late:
			t.Errorf("held pull at the end of queue %d returned status %d with %d messages, want FOUND with %q",
				q0, out.r.Status, len(out.r.GetMessageExts()), late)
		case out.at.Sub(sentAt) > time.Second:
			t.Errorf("held pull returned %v after the new message was sent (not woken by it)", out.at.Sub(sentAt).Round(time.Millisecond))
		default:
			t.Logf("held pull woken %v after the send", out.at.Sub(sentAt).Round(time.Millisecond))
		}
	case <-time.After(25 * time.Second):
		t.Errorf("pull at the end of queue %d did not return within 25s of a new message", q0)
	}

	// Commit offsets by hand: offset 2 on every queue.
	const commit = 2
	for _, mq := range queues {
		if err := pc.UpdateOffset(mq, commit); err != nil {
			t.Fatalf("UpdateOffset(queue %d): %v", mq.QueueId, err)
		}
	}
	stored := func() bool {
		for q := range queues {
			off, found, err := queryConsumerOffset(b.BrokerAddr, group, topic, q)
			if err != nil || !found || off != commit {
				return false
			}
		}
		return true
	}
	ok := waitFor(10*time.Second, func() bool {
		if err := pc.PersistOffset(context.Background(), topic); err != nil {
			t.Logf("PersistOffset: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
		return stored()
	})
	if !ok {
		for q := range queues {
			off, found, err := queryConsumerOffset(b.BrokerAddr, group, topic, q)
			t.Errorf("after UpdateOffset(%d)+PersistOffset, QUERY_CONSUMER_OFFSET for queue %d gives offset %d found %v err %v",
				commit, q, off, found, err)
		}
	}
	stop()

	// A new instance of the group sees the committed offsets.
	pc2, _ := startPullConsumer(t, b.NamesrvAdr, topic, consumer.MessageSelector{}, group,
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	for q, mq := range queues {
		off, err := pc2.CurrentOffset(mq)
		if err != nil || off != commit {
			t.Errorf("new instance of the group: CurrentOffset(queue %d) = %d (err %v), want %d", q, off, err, commit)
		}
	}
}
