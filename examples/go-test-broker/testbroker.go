// Package testbroker gives a Go test a FerroMQ broker of its own: name server, broker
// and gRPC front on free ports of 127.0.0.1, with data in the test's temporary
// directory, stopped when the test ends.
//
// It runs the `ferromq` binary (FERROMQ_BIN, or `ferromq` on the PATH), or, with
// FERROMQ_IMAGE set, that container image through podman or docker: for Go, Java or
// Python suites the image is the embedded broker. Copy this file into your project.
//
//	func TestOrders(t *testing.T) {
//		b := testbroker.Start(t)
//		p, _ := rocketmq.NewProducer(producer.WithNameServer([]string{b.NameServer}))
//		...
//	}
package testbroker

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Broker is a running FerroMQ; its fields are host:port addresses.
type Broker struct {
	NameServer string // what clients are given
	Broker     string // the broker itself, for admin requests
	GRPC       string // the gRPC front, for the 5.x clients
}

const readyTimeout = 30 * time.Second
const stopTimeout = 15 * time.Second

// Start starts a broker for t and registers its stop with t.Cleanup.
func Start(t testing.TB) *Broker {
	t.Helper()
	args := []string{"standalone",
		"--namesrv-listen", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0",
		"--grpc-listen", "127.0.0.1:0", "--no-dashboard", "--log-level", "warn"}
	var cmd *exec.Cmd
	if image := os.Getenv("FERROMQ_IMAGE"); image != "" {
		runtime := containerRuntime(t)
		// --rm removes the container and its anonymous /data volume when it stops; podman
		// and docker pass the SIGTERM sent to them on to the container.
		cmd = exec.Command(runtime, append([]string{"run", "--rm", "--network=host", image}, args...)...)
	} else {
		bin := os.Getenv("FERROMQ_BIN")
		if bin == "" {
			var err error
			if bin, err = exec.LookPath("ferromq"); err != nil {
				t.Fatalf("no ferromq: set FERROMQ_BIN to the binary or FERROMQ_IMAGE to the image")
			}
		}
		cmd = exec.Command(bin, append(args, "--data-dir", t.TempDir())...)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &safeBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %v: %v", cmd.Args, err)
	}
	ready := make(chan string, 1)
	go func() {
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			if line := scanner.Text(); strings.HasPrefix(line, "FerroMQ is ready") {
				ready <- line
			}
		}
		close(ready)
	}()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("ferromq did not stop within %v of SIGTERM", stopTimeout)
		}
	}
	select {
	case line, ok := <-ready:
		if !ok {
			stop()
			t.Fatalf("ferromq exited before it was ready: %s", stderr.String())
		}
		b, err := parseReady(line)
		if err != nil {
			stop()
			t.Fatal(err)
		}
		t.Cleanup(stop)
		return b
	case <-time.After(readyTimeout):
		stop()
		t.Fatalf("ferromq was not ready within %v: %s", readyTimeout, stderr.String())
	}
	return nil
}

// parseReady reads "FerroMQ is ready: name server A, broker B, gRPC C".
func parseReady(line string) (*Broker, error) {
	b := &Broker{}
	for _, part := range strings.Split(strings.TrimPrefix(line, "FerroMQ is ready: "), ", ") {
		switch {
		case strings.HasPrefix(part, "name server "):
			b.NameServer = strings.TrimPrefix(part, "name server ")
		case strings.HasPrefix(part, "broker "):
			b.Broker = strings.TrimPrefix(part, "broker ")
		case strings.HasPrefix(part, "gRPC "):
			b.GRPC = strings.TrimPrefix(part, "gRPC ")
		}
	}
	if b.NameServer == "" || b.Broker == "" {
		return nil, fmt.Errorf("unexpected ready line %q", line)
	}
	return b, nil
}

func containerRuntime(t testing.TB) string {
	if r := os.Getenv("CONTAINER_RUNTIME"); r != "" {
		return r
	}
	for _, r := range []string{"podman", "docker"} {
		if _, err := exec.LookPath(r); err == nil {
			return r
		}
	}
	t.Fatal("FERROMQ_IMAGE is set but neither podman nor docker is installed")
	return ""
}

// safeBuffer holds the process's stderr, readable while it is still being written.
type safeBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
