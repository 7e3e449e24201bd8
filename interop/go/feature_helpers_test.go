package interop

// Helpers shared by the feature tests (ordering, retry/DLQ, filters, offset
// reset, pull consumer, delay/timer): a raw remoting client for requests the
// Go client cannot send, a pull-consumer starter, and small utilities.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// Request codes used raw (r/protocol/RequestCode.java).
const (
	codeQueryConsumerOffset = 14
	codeGetMaxOffset        = 30
	codeGetRouteInfo        = 105
	codeInvokeResetOffset   = 222 // INVOKE_BROKER_TO_RESET_OFFSET (admin → broker)
)

// ---------------------------------------------------------------------------
// Raw remoting client (rawInvoke: one request per connection).
// ---------------------------------------------------------------------------

// remotingCmd is a decoded RemotingCommand (JSON or ROCKETMQ binary header).
type remotingCmd struct {
	Code      int
	Language  string
	Version   int
	Opaque    int32
	Flag      int
	Remark    string
	ExtFields map[string]string
	Body      []byte
	rawHeader string // JSON header text (JSON frames only), for messages
}

func (c *remotingCmd) String() string {
	return fmt.Sprintf("code=%d remark=%q extFields=%v body=%s", c.Code, c.Remark, c.ExtFields, abbrevBytes(c.Body, 512))
}

func abbrevBytes(b []byte, n int) string {
	if len(b) <= n {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("%q...(%d bytes)", b[:n], len(b))
}

var rawOpaque int32 = 1 << 24

// rawInvoke sends one request frame to addr and returns the matching
// response. Frame: i32 total_len, i32 (0<<24 | header_len), JSON header, body.
// The header is what the Go client sends: {"code":..,"language":"GO",
// "version":317,"opaque":..,"flag":0,"remark":"","extFields":{...}} with
// string-valued extFields.
func rawInvoke(addr string, code int, ext map[string]string, body []byte, timeout time.Duration) (*remotingCmd, error) {
	frame, opaque, err := rawRequest(code, ext, body)
	if err != nil {
		return nil, err
	}
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write(frame); err != nil {
		return nil, fmt.Errorf("write request code %d to %s: %v", code, addr, err)
	}
	for i := 0; i < 100; i++ { // skip unrelated frames (bounded)
		cmd, err := readFrame(conn)
		if err != nil {
			return nil, fmt.Errorf("read response to request code %d (opaque %d) from %s: %v", code, opaque, addr, err)
		}
		if cmd.Flag&1 == 1 && cmd.Opaque == opaque {
			return cmd, nil
		}
	}
	return nil, fmt.Errorf("no response with opaque %d among 100 frames from %s", opaque, addr)
}

// rawRequest encodes one request frame with a fresh opaque (see rawInvoke).
func rawRequest(code int, ext map[string]string, body []byte) (frame []byte, opaque int32, err error) {
	if ext == nil {
		ext = map[string]string{}
	}
	opaque = atomic.AddInt32(&rawOpaque, 1)
	hdr, err := json.Marshal(struct {
		Code      int               `json:"code"`
		Language  string            `json:"language"`
		Version   int               `json:"version"`
		Opaque    int32             `json:"opaque"`
		Flag      int               `json:"flag"`
		Remark    string            `json:"remark"`
		ExtFields map[string]string `json:"extFields"`
	}{code, "GO", 317, opaque, 0, "", ext})
	if err != nil {
		return nil, 0, err
	}
	frame = make([]byte, 8, 8+len(hdr)+len(body))
	binary.BigEndian.PutUint32(frame[0:], uint32(4+len(hdr)+len(body)))
	binary.BigEndian.PutUint32(frame[4:], uint32(len(hdr))) // serialize type 0 = JSON
	return append(append(frame, hdr...), body...), opaque, nil
}

func readFrame(r io.Reader) (*remotingCmd, error) {
	var pre [4]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, err
	}
	total := binary.BigEndian.Uint32(pre[:])
	if total < 4 || total > 64<<20 {
		return nil, fmt.Errorf("bad frame length %d", total)
	}
	buf := make([]byte, total)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	word := binary.BigEndian.Uint32(buf[0:4])
	serType, hdrLen := word>>24, word&0xFFFFFF
	if 4+hdrLen > total {
		return nil, fmt.Errorf("header length %d exceeds frame length %d", hdrLen, total)
	}
	hdr := buf[4 : 4+hdrLen]
	cmd := &remotingCmd{Body: buf[4+hdrLen:]}
	switch serType {
	case 0:
		var j struct {
			Code      int               `json:"code"`
			Language  interface{}       `json:"language"`
			Version   int               `json:"version"`
			Opaque    int32             `json:"opaque"`
			Flag      int               `json:"flag"`
			Remark    string            `json:"remark"`
			ExtFields map[string]string `json:"extFields"`
		}
		if err := json.Unmarshal(hdr, &j); err != nil {
			return nil, fmt.Errorf("JSON header %s: %v (extFields values must be strings)", hdr, err)
		}
		cmd.Code, cmd.Version, cmd.Opaque, cmd.Flag, cmd.Remark, cmd.ExtFields = j.Code, j.Version, j.Opaque, j.Flag, j.Remark, j.ExtFields
		cmd.Language = fmt.Sprint(j.Language)
		cmd.rawHeader = string(hdr)
	case 1:
		if err := decodeBinaryHeader(hdr, cmd); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown serialize type %d", serType)
	}
	return cmd, nil
}

func decodeBinaryHeader(h []byte, cmd *remotingCmd) error {
	bad := errors.New("truncated ROCKETMQ binary header")
	if len(h) < 21 {
		return bad
	}
	cmd.Code = int(int16(binary.BigEndian.Uint16(h[0:])))
	cmd.Language = strconv.Itoa(int(h[2]))
	cmd.Version = int(int16(binary.BigEndian.Uint16(h[3:])))
	cmd.Opaque = int32(binary.BigEndian.Uint32(h[5:]))
	cmd.Flag = int(int32(binary.BigEndian.Uint32(h[9:])))
	p := 13
	rl := int(binary.BigEndian.Uint32(h[p:]))
	p += 4
	if rl < 0 || p+rl > len(h) {
		return bad
	}
	cmd.Remark = string(h[p : p+rl])
	p += rl
	if p+4 > len(h) {
		return bad
	}
	el := int(binary.BigEndian.Uint32(h[p:]))
	p += 4
	if el < 0 || p+el > len(h) {
		return bad
	}
	end := p + el
	cmd.ExtFields = map[string]string{}
	for p < end {
		if p+2 > end {
			return bad
		}
		kl := int(binary.BigEndian.Uint16(h[p:]))
		p += 2
		if p+kl+4 > end {
			return bad
		}
		k := string(h[p : p+kl])
		p += kl
		vl := int(binary.BigEndian.Uint32(h[p:]))
		p += 4
		if vl < 0 || p+vl > end {
			return bad
		}
		cmd.ExtFields[k] = string(h[p : p+vl])
		p += vl
	}
	return nil
}

// routeExists asks the name server for a topic's route (GET_ROUTEINFO_BY_TOPIC).
func routeExists(nsAddr, topic string) bool {
	r, err := rawInvoke(nsAddr, codeGetRouteInfo, map[string]string{"topic": topic}, nil, 3*time.Second)
	return err == nil && r.Code == 0 && len(r.Body) > 0
}

// queryConsumerOffset asks the broker for a group's committed offset
// (QUERY_CONSUMER_OFFSET). found=false on code 22 (QUERY_NOT_FOUND).
func queryConsumerOffset(brokerAddr, group, topic string, queueID int) (offset int64, found bool, err error) {
	r, err := rawInvoke(brokerAddr, codeQueryConsumerOffset, map[string]string{
		"consumerGroup": group, "topic": topic, "queueId": strconv.Itoa(queueID)}, nil, 3*time.Second)
	if err != nil {
		return 0, false, err
	}
	switch r.Code {
	case 0:
		off, perr := strconv.ParseInt(r.ExtFields["offset"], 10, 64)
		if perr != nil {
			return 0, false, fmt.Errorf("QUERY_CONSUMER_OFFSET answered code 0 without a numeric offset: %s", r)
		}
		return off, true, nil
	case 22:
		return 0, false, nil
	default:
		return 0, false, fmt.Errorf("QUERY_CONSUMER_OFFSET: %s", r)
	}
}

// ---------------------------------------------------------------------------
// Consumers.
// ---------------------------------------------------------------------------

// startPullConsumer creates, subscribes and starts a (v2.1.2) pull consumer,
// retrying "route info not found" like startPushConsumer. Shutdown runs in
// t.Cleanup and through the returned func.
func startPullConsumer(t *testing.T, nsAddr, topic string, sel consumer.MessageSelector, group string, extra ...consumer.Option) (rocketmq.PullConsumer, func()) {
	t.Helper()
	begin := time.Now()
	for attempt := 1; ; attempt++ {
		opts := []consumer.Option{
			consumer.WithNameServer([]string{nsAddr}),
			consumer.WithGroupName(group),
			consumer.WithInstance(uniq(t, "pullinst")),
			// v2.1.2's pull-consumer options leave PullBatchSize at 0; its
			// background pull loop would then ask for 0 messages.
			consumer.WithPullBatchSize(32),
		}
		opts = append(opts, extra...)
		pc, err := rocketmq.NewPullConsumer(opts...)
		if err != nil {
			t.Fatalf("NewPullConsumer(group %s): %v", group, err)
		}
		if err := pc.Subscribe(topic, sel); err != nil {
			t.Fatalf("pull consumer Subscribe(%s): %v", topic, err)
		}
		err = pc.Start()
		if err == nil {
			var once sync.Once
			shutdown := func() { once.Do(func() { _ = pc.Shutdown() }) }
			t.Cleanup(shutdown)
			return pc, shutdown
		}
		_ = pc.Shutdown()
		if !strings.Contains(err.Error(), "route info not found") || time.Since(begin) > 10*time.Second {
			t.Fatalf("pull consumer Start (group %s, topic %s, attempt %d): %v", group, topic, attempt, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// primeRetryTopic makes the group's retry topic known before the real
// consumer starts. A Go consumer learns routes at Start() (before its first
// HEART_BEAT) and then only every 30 s, while the broker creates
// %RETRY%<group> when it first sees the group in a heartbeat (Apache:
// ClientManageProcessor.heartBeat) and registers it with the name server at
// once. Without this a brand-new group pulls its retry queue only 30-50 s
// after Start, with any broker. A short-lived consumer of the group sends
// that first heartbeat; then we wait for the route.
func primeRetryTopic(t *testing.T, b *Broker, topic, group string) {
	t.Helper()
	c := newCollector()
	c.ignore = func(string) bool { return true }
	_, stop := startPushConsumer(t, b.NamesrvAdr, topic, c, consumerOpts{group: group, from: consumer.ConsumeFromFirstOffset})
	retry := "%RETRY%" + group
	ok := waitFor(10*time.Second, func() bool { return routeExists(b.NamesrvAdr, retry) })
	stop()
	if !ok {
		t.Errorf("the name server has no route for %s within 10s of the group's first HEART_BEAT: the broker must create the "+
			"group's retry topic when it first sees the group in a heartbeat and register it at once (Apache "+
			"ClientManageProcessor.heartBeat); otherwise Go consumers of a new group pull retried messages only after "+
			"their next 30 s route refresh", retry)
	}
	time.Sleep(500 * time.Millisecond) // let the broker drop the priming client
}

// localOffsetDir is where v2.1.2 keeps BROADCASTING offsets
// (consumer/offset_store.go: $rocketmq.client.localOffsetStoreDir or
// $HOME/.rocketmq_client_go; files at <dir>/<group>/<clientID>/offset.json
// because the constructor's arguments are swapped at its call site).
func localOffsetDir() string {
	if d := os.Getenv("rocketmq.client.localOffsetStoreDir"); d != "" {
		return d
	}
	return filepath.Join(os.Getenv("HOME"), ".rocketmq_client_go")
}

// removeLocalOffsetsAtCleanup deletes a broadcasting group's local offset
// files after the test (register it before starting the consumers, so it runs
// after their shutdown).
func removeLocalOffsetsAtCleanup(t *testing.T, group string) {
	if group == "" || strings.ContainsAny(group, "/\\.") {
		return
	}
	dir := filepath.Join(localOffsetDir(), group)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
}

// ---------------------------------------------------------------------------
// Sending.
// ---------------------------------------------------------------------------

// sendMsg sends one message with SendSync and fails the test on error.
func sendMsg(t *testing.T, p rocketmq.Producer, m *primitive.Message) *primitive.SendResult {
	t.Helper()
	r, err := trySend(p, m)
	if err != nil {
		t.Fatalf("SendSync %q to %s: %v", m.Body, m.Topic, err)
	}
	return r
}

func trySend(p rocketmq.Producer, m *primitive.Message) (*primitive.SendResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := p.SendSync(ctx, m)
	if err != nil {
		return nil, err
	}
	if r.Status != primitive.SendOK {
		return r, fmt.Errorf("status %d, want SendOK(0); result %s", r.Status, r)
	}
	return r, nil
}

// ms formats a duration in milliseconds for messages.
func ms(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }
