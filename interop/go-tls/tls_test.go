// Package interoptls runs the official Go client with its TLS option (WithTls, which
// dials with tls.DialWithDialer and InsecureSkipVerify) against FerroMQ with a
// certificate made by the test.
package interoptls

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"
)

// writeCertificate writes a self-signed certificate for localhost/127.0.0.1 and its key.
func writeCertificate(t *testing.T, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type output struct {
	mu sync.Mutex
	b  strings.Builder
}

func (o *output) add(line string) { o.mu.Lock(); o.b.WriteString(line + "\n"); o.mu.Unlock() }
func (o *output) String() string  { o.mu.Lock(); defer o.mu.Unlock(); return o.b.String() }

// startFerroMQ runs `ferromq standalone` with broker.conf lines; returns the name server
// and broker addresses and the process output.
func startFerroMQ(t *testing.T, conf string) (string, string, *output) {
	t.Helper()
	bin := os.Getenv("FERROMQ_BIN")
	if bin == "" {
		bin = "../../target/debug/ferromq"
	}
	dir := t.TempDir()
	confPath := filepath.Join(dir, "broker.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ns, broker := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "standalone", "--data-dir", filepath.Join(dir, "data"), "-c", confPath,
		"--namesrv-listen", ns, "--broker-listen", broker, "--no-dashboard")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	out := &output{}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			out.add(sc.Text())
			if strings.HasPrefix(sc.Text(), "FerroMQ is ready") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("ferromq output:\n%s", out)
		}
	})
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatalf("ferromq did not become ready:\n%s", out)
	}
	return ns, broker, out
}

func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}

func TestGoClientWithTls(t *testing.T) {
	rlog.SetLogLevel("error")
	certPath, keyPath := writeCertificate(t, t.TempDir())
	ns, broker, out := startFerroMQ(t, fmt.Sprintf("tls.server.mode=enforcing\ntls.server.certPath=%s\ntls.server.keyPath=%s\n", certPath, keyPath))
	nonce := time.Now().UnixNano()
	topic := fmt.Sprintf("GoTls%d", nonce)

	p, err := rocketmq.NewProducer(producer.WithNameServer([]string{ns}), producer.WithTls(true),
		producer.WithGroupName(fmt.Sprintf("pg-tls-%d", nonce)))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown()
	want := map[string]bool{}
	for i := 0; i < 10; i++ {
		body := fmt.Sprintf("tls-%d-%d", nonce, i)
		res, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte(body)))
		if err != nil || res.Status != primitive.SendOK {
			t.Fatalf("send over TLS: %v %v", res, err)
		}
		want[body] = true
	}

	var mu sync.Mutex
	got := map[string]bool{}
	c, err := rocketmq.NewPushConsumer(consumer.WithNameServer([]string{ns}), consumer.WithTls(true),
		consumer.WithGroupName(fmt.Sprintf("cg-tls-%d", nonce)), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Subscribe(topic, consumer.MessageSelector{}, func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			got[string(m.Body)] = true
		}
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	if !waitFor(40*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for b := range want {
			if !got[b] {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("consumed over TLS %d of %d", len(got), len(want))
	}

	// Plaintext is refused under enforcing. (Not with a second Go client: WithTls sets the
	// client library's shared default configuration, so every client in the process uses
	// TLS once one does.) A plaintext GET_MAX_OFFSET frame gets no answer, only a close.
	conn, err := net.DialTimeout("tcp", broker, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	header := fmt.Sprintf(`{"code":30,"language":"GO","version":317,"opaque":1,"flag":0,"extFields":{"topic":%q,"queueId":"0"}}`, topic)
	frame := make([]byte, 8, 8+len(header))
	binary.BigEndian.PutUint32(frame, uint32(4+len(header)))
	binary.BigEndian.PutUint32(frame[4:], uint32(len(header)))
	frame = append(frame, header...)
	if _, err := conn.Write(frame); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	reply, err := io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the broker neither answered nor closed a plaintext connection")
	}
	// At most a TLS alert record (content type 21) before the close: never a response.
	if len(reply) > 0 && reply[0] != 21 {
		t.Fatalf("a plaintext request got %q back under tls.server.mode=enforcing", reply)
	}
	if !waitFor(5*time.Second, func() bool { return strings.Contains(out.String(), "TLS handshake failed") }) {
		t.Fatal("the refused plaintext connection was not logged")
	}
}
