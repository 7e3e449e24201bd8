package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

func jsonFrame(hdr string, body []byte) []byte {
	f := make([]byte, 8, 8+len(hdr)+len(body))
	binary.BigEndian.PutUint32(f[0:4], uint32(4+len(hdr)+len(body)))
	binary.BigEndian.PutUint32(f[4:8], uint32(len(hdr)))
	f = append(f, hdr...)
	return append(f, body...)
}

func binFrame(code int16) []byte {
	hdr := make([]byte, 2)
	binary.BigEndian.PutUint16(hdr, uint16(code))
	f := make([]byte, 8)
	binary.BigEndian.PutUint32(f[0:4], uint32(4+len(hdr)))
	binary.BigEndian.PutUint32(f[4:8], 1<<24|uint32(len(hdr)))
	return append(f, hdr...)
}

// TestProxyRecordsFrames pushes frames through the proxy in awkward chunks
// and checks forwarding in both directions plus the recorded files.
func TestProxyRecordsFrames(t *testing.T) {
	dir := t.TempDir()
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		c, err := echo.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c) // echo
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go serve(ln, echo.Addr().String(), dir, false)

	f1 := jsonFrame(`{"code":105,"language":"GO","version":317,"opaque":1,"flag":0,"remark":"","extFields":{"topic":"T"}}`, nil)
	f2 := jsonFrame(`{"code":10,"flag":0,"extFields":{}}`, []byte("hello body"))
	f3 := binFrame(34)
	stream := append(append(append([]byte{}, f1...), f2...), f3...)

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < len(stream); i += 7 { // split frames across writes
		end := i + 7
		if end > len(stream) {
			end = len(stream)
		}
		if _, err := c.Write(stream[i:end]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	back := make([]byte, len(stream))
	if _, err := io.ReadFull(c, back); err != nil {
		t.Fatalf("read echoed bytes: %v", err)
	}
	if !bytes.Equal(back, stream) {
		t.Fatalf("bytes were not forwarded unchanged")
	}

	var names []string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		ents, _ := os.ReadDir(dir)
		names = names[:0]
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if len(names) >= 3 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	sort.Strings(names)
	want := []string{"001-code105.bin", "002-code10.bin", "003-code34.bin"}
	if len(names) != 3 {
		t.Fatalf("files %v, want %v", names, want)
	}
	for i, w := range want {
		if names[i] != w {
			t.Fatalf("files %v, want %v", names, want)
		}
	}
	for i, f := range [][]byte{f1, f2, f3} {
		got, _ := os.ReadFile(filepath.Join(dir, want[i]))
		if !bytes.Equal(got, f) {
			t.Errorf("%s content differs from the frame sent", want[i])
		}
	}
}
