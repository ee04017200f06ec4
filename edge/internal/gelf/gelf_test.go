package gelf

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

type msg struct {
	Version, Host, Facility string
	Short                   string  `json:"short_message"`
	Full                    string  `json:"full_message"`
	Time                    float64 `json:"timestamp"`
	Level                   int
}

// readUDP reads one GELF message from pc, reassembling chunks.
func readUDP(t *testing.T, pc net.PacketConn) msg {
	t.Helper()
	_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	chunks := map[int][]byte{}
	total := 1
	buf := make([]byte, 65536)
	for len(chunks) < total {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		b := append([]byte(nil), buf[:n]...)
		if len(b) > 12 && b[0] == 0x1e && b[1] == 0x0f {
			if len(b) > chunkSize {
				t.Errorf("chunk of %d bytes, over %d", len(b), chunkSize)
			}
			chunks[int(b[10])], total = b[12:], int(b[11])
			continue
		}
		chunks[0] = b
	}
	var z []byte
	for i := range total {
		z = append(z, chunks[i]...)
	}
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	plain, _ := io.ReadAll(zr)
	var m msg
	if err := json.Unmarshal(plain, &m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, plain)
	}
	return m
}

func TestUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	w, err := New(pc.LocalAddr().String(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	_, _ = w.Write([]byte("[GIN] 200 GET /a\nError #01: boom\n"))
	m := readUDP(t, pc)
	if m.Version != "1.1" || m.Short != "[GIN] 200 GET /a" || m.Full != "[GIN] 200 GET /a\nError #01: boom" || m.Level != 6 || m.Host == "" || m.Facility == "" {
		t.Errorf("message %+v", m)
	}
	if d := time.Since(time.Unix(0, int64(m.Time*1e9))); d < 0 || d > time.Minute {
		t.Errorf("timestamp %v is %v away", m.Time, d)
	}
	// A message past one datagram is chunked (random text does not
	// compress below 1420 bytes).
	big := make([]byte, 6000)
	for i := range big {
		big[i] = byte('a' + (i*7919)%26)
	}
	_, _ = w.Write(big)
	if m := readUDP(t, pc); m.Short != string(big) {
		t.Errorf("chunked message lost: %d bytes back", len(m.Short))
	}
}

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	w, err := New(ln.Addr().String(), true)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = w.Write([]byte("one"))
	_, _ = w.Write([]byte("two"))
	w.Close()
	r := bufio.NewReader(conn)
	for _, want := range []string{"one", "two"} {
		frame, err := r.ReadBytes(0)
		if err != nil {
			t.Fatal(err)
		}
		var m msg
		if err := json.Unmarshal(frame[:len(frame)-1], &m); err != nil || m.Short != want {
			t.Errorf("frame %q: %v", frame, err)
		}
	}
}

func TestTCPRefused(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	if _, err := New(addr, true); err == nil || !strings.Contains(err.Error(), "telemetry/gelf") {
		t.Errorf("New on a closed port: %v", err)
	}
}
