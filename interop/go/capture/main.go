// Command capture is a tiny TCP proxy for recording RocketMQ remoting frames.
//
//	go run ./capture -listen 127.0.0.1:19876 -target 127.0.0.1:9876 -out DIR
//
// It forwards bytes in both directions unchanged and writes every complete
// client→server frame (4-byte big-endian total length + that many bytes,
// i.e. the frame exactly as on the wire) to DIR/NNN-code<code>.bin, where NNN
// is a global sequence number and <code> is the request code taken from the
// header ("code" of the JSON header, or the first int16 of a ROCKETMQ binary
// header). With -responses, server→client frames are also written, as
// DIR/NNN-resp-code<code>.bin.
//
// Frame layout: i32 total_len | i32 (serType<<24 | hdrLen) | header | body.
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

const maxFrame = 64 << 20 // larger than any legal frame (Java limit 16 MiB)

var (
	listenAddr = flag.String("listen", "127.0.0.1:19876", "address to listen on")
	targetAddr = flag.String("target", "127.0.0.1:9876", "address to forward to")
	outDir     = flag.String("out", "capture-out", "directory for captured frames")
	responses  = flag.Bool("responses", false, "also record server→client frames (NNN-resp-code<code>.bin)")
)

var seq atomic.Int64

func main() {
	flag.Parse()
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		log.Fatalf("create %s: %v", *outDir, err)
	}
	ln, err := net.Listen("tcp", *listenAddr)
	if err != nil {
		log.Fatalf("listen %s: %v", *listenAddr, err)
	}
	log.Printf("capture: %s -> %s, frames to %s", ln.Addr(), *targetAddr, *outDir)
	serve(ln, *targetAddr, *outDir, *responses)
}

// serve accepts connections until ln is closed.
func serve(ln net.Listener, target, dir string, withResponses bool) {
	var connID int64
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Printf("accept: %v (stopping)", err)
			return
		}
		connID++
		go handle(connID, c, target, dir, withResponses)
	}
}

func handle(id int64, client net.Conn, target, dir string, withResponses bool) {
	defer client.Close()
	server, err := net.Dial("tcp", target)
	if err != nil {
		log.Printf("conn %d: dial %s: %v", id, target, err)
		return
	}
	defer server.Close()
	log.Printf("conn %d: %s -> %s", id, client.RemoteAddr(), target)

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // client → server (always recorded)
		defer wg.Done()
		pump(id, server, client, &frameWriter{dir: dir, prefix: ""})
		closeWrite(server)
	}()
	go func() { // server → client
		defer wg.Done()
		var fw *frameWriter
		if withResponses {
			fw = &frameWriter{dir: dir, prefix: "resp-"}
		}
		pump(id, client, server, fw)
		closeWrite(client)
	}()
	wg.Wait()
	log.Printf("conn %d: closed", id)
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// pump copies src to dst, feeding the bytes to fw (if non-nil).
func pump(id int64, dst io.Writer, src io.Reader, fw *frameWriter) {
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if fw != nil {
				fw.feed(id, buf[:n])
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// frameWriter splits a byte stream into remoting frames and stores them.
type frameWriter struct {
	dir    string
	prefix string
	buf    []byte
	broken bool
}

func (f *frameWriter) feed(id int64, p []byte) {
	if f.broken {
		return
	}
	f.buf = append(f.buf, p...)
	for len(f.buf) >= 4 {
		total := int64(binary.BigEndian.Uint32(f.buf[:4]))
		if total < 4 || total > maxFrame {
			log.Printf("conn %d: implausible frame length %d, no longer parsing this direction", id, total)
			f.broken = true
			f.buf = nil
			return
		}
		if int64(len(f.buf)) < 4+total {
			return
		}
		frame := f.buf[:4+total]
		code := frameCode(frame)
		n := seq.Add(1)
		name := filepath.Join(f.dir, fmt.Sprintf("%03d-%scode%s.bin", n, f.prefix, code))
		if err := os.WriteFile(name, frame, 0o644); err != nil {
			log.Printf("write %s: %v", name, err)
		} else {
			log.Printf("conn %d: %s (%d bytes)", id, filepath.Base(name), len(frame))
		}
		f.buf = append([]byte(nil), f.buf[4+total:]...)
	}
}

// frameCode extracts the request/response code from a complete frame, or
// returns "unknown".
func frameCode(frame []byte) string {
	if len(frame) < 8 {
		return "unknown"
	}
	word := binary.BigEndian.Uint32(frame[4:8])
	serType := word >> 24
	hdrLen := int(word & 0xFFFFFF)
	if 8+hdrLen > len(frame) {
		return "unknown"
	}
	hdr := frame[8 : 8+hdrLen]
	switch serType {
	case 0: // JSON
		var h struct {
			Code *int `json:"code"`
		}
		if err := json.Unmarshal(hdr, &h); err != nil || h.Code == nil {
			return "unknown"
		}
		return fmt.Sprint(*h.Code)
	case 1: // ROCKETMQ binary: code is the first int16
		if len(hdr) < 2 {
			return "unknown"
		}
		return fmt.Sprint(int16(binary.BigEndian.Uint16(hdr[:2])))
	default:
		return "unknown"
	}
}
