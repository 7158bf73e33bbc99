package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestDrainEndsStreams: Drain ends the event streams and upgraded
// connections to the drained backend as soon as it starts, and waits only
// for the ordinary request in flight.
func TestDrainEndsStreams(t *testing.T) {
	slowGot, release := make(chan struct{}), make(chan struct{})
	be := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/events":
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: tick\n\n")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		case "/ws":
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			brw.Flush()
			io.Copy(io.Discard, brw) // until the proxy closes it
		case "/slow":
			close(slowGot)
			<-release
			io.WriteString(w, "done")
		}
	})
	s, addr := startProxy(t, Options{}, Route{App: "a", Hosts: []string{"a.test"}, Backends: []string{be}})

	// An event stream, read until it ends.
	req, _ := http.NewRequest("GET", "http://"+addr+"/events", nil)
	req.Host = "a.test"
	resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sse := bufio.NewReader(resp.Body)
	if line, err := sse.ReadString('\n'); err != nil || line != "data: tick\n" {
		t.Fatalf("event stream: %q, %v", line, err)
	}
	sseEnded := make(chan struct{})
	go func() {
		defer close(sseEnded)
		io.Copy(io.Discard, sse)
	}()

	// A connection switched to a WebSocket, read until it ends.
	ws, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	io.WriteString(ws, "GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	wsr := bufio.NewReader(ws)
	if line, err := wsr.ReadString('\n'); err != nil || !strings.Contains(line, " 101 ") {
		t.Fatalf("upgrade: %q, %v", line, err)
	}
	wsEnded := make(chan struct{})
	go func() {
		defer close(wsEnded)
		io.Copy(io.Discard, wsr)
	}()

	// An ordinary request in flight.
	slowBody := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+addr+"/slow", nil)
		req.Host = "a.test"
		resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
		if err != nil {
			slowBody <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		slowBody <- string(b)
	}()
	<-slowGot

	drained := make(chan int, 1)
	go func() { drained <- s.Drain(context.Background(), []string{be}) }()
	<-sseEnded
	<-wsEnded
	select {
	case n := <-drained:
		t.Fatalf("Drain returned %d with an ordinary request in flight", n)
	default:
	}
	close(release)
	if b := <-slowBody; b != "done" {
		t.Errorf("ordinary request: %q", b)
	}
	if n := <-drained; n != 0 {
		t.Errorf("Drain = %d, want 0", n)
	}
}
