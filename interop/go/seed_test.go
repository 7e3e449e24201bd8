package interop

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	seedNamesrv = "127.0.0.1:9876"
	seedBroker  = "127.0.0.1:10911"
)

// buildSeed compiles ./seed/<name> (package main) into dir.
func buildSeed(t *testing.T, dir, name string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./seed/"+name)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./seed/%s: %v\n%s", name, err, b)
	}
	return out
}

func seedEnv() []string {
	// Keep the seed programs' rlog output short; the programs are unchanged.
	return append(os.Environ(), "ROCKETMQ_GO_LOG_LEVEL=warn")
}

// TestSeedProducerConsumer runs the user's tutorial programs (seed/producer,
// seed/consumer — verbatim except the name-server address) against ferromq
// on the default ports 9876/10911.
func TestSeedProducerConsumer(t *testing.T) {
	captureClientLog(t)
	for _, a := range []string{seedNamesrv, seedBroker} {
		if !portFree(a) {
			t.Skipf("SKIP: %s is already in use; the seed programs hard-code 127.0.0.1:9876, so this test needs the default ports 9876/10911 free", a)
		}
	}
	bin := t.TempDir()
	prodBin := buildSeed(t, bin, "producer")
	consBin := buildSeed(t, bin, "consumer")

	startBroker(t, brokerOpts{namesrvAddr: seedNamesrv, brokerAddr: seedBroker, name: "default-ports"})

	// ---- producer: must print 发送成功 with sendStatus=0 (SendOK) ----
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pcmd := exec.CommandContext(ctx, prodBin)
	pcmd.Env = seedEnv()
	pout, perr := pcmd.CombinedOutput()
	t.Logf("seed producer output:\n%s", pout)
	if ctx.Err() != nil {
		t.Fatalf("seed producer did not finish within 60s")
	}
	if perr != nil {
		t.Fatalf("seed producer failed: %v", perr)
	}
	// v2.1.2 SendResult.String(): "SendResult [sendStatus=%d, msgIds=..., ...]"
	if !strings.Contains(string(pout), "发送成功:SendResult [sendStatus=0,") {
		t.Fatalf("seed producer output does not contain `发送成功:SendResult [sendStatus=0,` (SendOK)")
	}

	// ---- consumer: must print the message within 30 s ----
	out := &syncBuffer{}
	ccmd := exec.Command(consBin)
	ccmd.Env = seedEnv()
	ccmd.Stdout, ccmd.Stderr = out, out
	if err := ccmd.Start(); err != nil {
		t.Fatalf("start seed consumer: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- ccmd.Wait() }()
	stopConsumer := func() {
		_ = ccmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("seed consumer did not die after SIGKILL")
		}
	}
	got := false
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-tick.C:
			if strings.Contains(out.String(), "body=this is imooc1") {
				got = true
				break wait
			}
		case err := <-exited:
			t.Fatalf("seed consumer exited early (%v); output:\n%s", err, out.String())
		case <-deadline:
			break wait
		}
	}
	stopConsumer()
	t.Logf("seed consumer output:\n%s", out.String())
	if !got {
		t.Fatalf("seed consumer did not print `获取到值:[Message=[topic=imooc1, body=this is imooc1, ...` within 30s")
	}
	if !strings.Contains(out.String(), "获取到值:[Message=[topic=imooc1, body=this is imooc1") {
		t.Errorf("seed consumer output has the body but not in the expected `获取到值:[Message=[topic=imooc1, body=...` form")
	}
}
