package cli

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// A minimal WebSocket echo (RFC 6455, small text frames only), so a script
// can show that Upgrade requests pass through the proxy to a real app.

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// wsEchoServer is the app: `web: wsecho-server` listens on $PORT and echoes
// every text frame back, prefixed with "echo: ".
func wsEchoServer() int {
	h := func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			fmt.Fprintln(w, "websocket echo; upgrade to talk")
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
			wsAccept(r.Header.Get("Sec-WebSocket-Key")))
		if rw.Flush() != nil {
			return
		}
		for {
			msg, err := wsRead(rw.Reader)
			var closed *wsClosed
			if errors.As(err, &closed) {
				fmt.Printf("got close %d %s\n", closed.code, closed.reason)
			}
			if err != nil {
				return
			}
			if wsWrite(conn, []byte("echo: "+string(msg)), nil) != nil {
				return
			}
		}
	}
	err := http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), http.HandlerFunc(h))
	fmt.Fprintln(os.Stderr, err)
	return 1
}

// wsWrite writes one text frame, masked with mask when it is not nil (a
// client must mask).
func wsWrite(w io.Writer, payload, mask []byte) error {
	if len(payload) > 125 {
		return errors.New("frame too long for this test")
	}
	b := []byte{0x81, byte(len(payload))}
	if mask != nil {
		b[1] |= 0x80
		b = append(b, mask...)
		for i, c := range payload {
			b = append(b, c^mask[i%4])
		}
	} else {
		b = append(b, payload...)
	}
	_, err := w.Write(b)
	return err
}

// wsRead reads one small frame and returns its payload, unmasked; a close
// frame is a *wsClosed error.
func wsRead(r *bufio.Reader) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(hdr[1] & 0x7f)
	if n > 125 {
		return nil, errors.New("frame too long for this test")
	}
	var mask []byte
	if hdr[1]&0x80 != 0 {
		mask = make([]byte, 4)
		if _, err := io.ReadFull(r, mask); err != nil {
			return nil, err
		}
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return nil, err
	}
	for i := range p {
		if mask != nil {
			p[i] ^= mask[i%4]
		}
	}
	if hdr[0]&0x0f == 0x8 {
		c := &wsClosed{}
		if len(p) >= 2 {
			c.code, c.reason = int(p[0])<<8|int(p[1]), string(p[2:])
		}
		return nil, c
	}
	return p, nil
}

// wsClosed is what wsRead returns for a close frame: its status code and
// reason.
type wsClosed struct {
	code   int
	reason string
}

func (c *wsClosed) Error() string { return fmt.Sprintf("close %d %s", c.code, c.reason) }

// wsecho URL HOST MSG...: open a WebSocket to URL with Host HOST, send
// each MSG and print each answer on stdout.
func cmdWSEcho(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 3 || neg {
		ts.Fatalf("usage: wsecho URL HOST MSG...")
	}
	conn, br := openWS(ts, args[0], args[1])
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	for _, msg := range args[2:] {
		mask := make([]byte, 4)
		_, _ = rand.Read(mask)
		ts.Check(wsWrite(conn, []byte(msg), mask))
		p, err := wsRead(br)
		ts.Check(err)
		fmt.Fprintf(ts.Stdout(), "%s\n", p)
	}
}

// openWS opens a WebSocket to URL with Host host and returns it with its
// reader, past the handshake.
func openWS(ts *testscript.TestScript, rawURL, host string) (net.Conn, *bufio.Reader) {
	u, err := url.Parse(rawURL)
	ts.Check(err)
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	ts.Check(err)
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	k := base64.StdEncoding.EncodeToString(key)
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		u.RequestURI(), host, k)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	ts.Check(err)
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(k) {
		conn.Close()
		ts.Fatalf("websocket: no upgrade: %s %v", resp.Status, resp.Header)
	}
	return conn, br
}

// wsConns are the scripts' open WebSockets, by script and name; each
// one's channel gets how it ended.
var (
	wsMu    sync.Mutex
	wsConns = map[*testscript.TestScript]map[string]chan string{}
)

// wsopen NAME URL HOST: open a WebSocket to URL with Host HOST, check that
// it echoes, and leave it open, reading, until the server ends it (see
// wsclosed) or the script ends.
func cmdWSOpen(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 || neg {
		ts.Fatalf("usage: wsopen NAME URL HOST")
	}
	conn, br := openWS(ts, args[1], args[2])
	ts.Check(wsWrite(conn, []byte("ping"), []byte{1, 2, 3, 4}))
	if p, err := wsRead(br); err != nil || string(p) != "echo: ping" {
		conn.Close()
		ts.Fatalf("wsopen %s: %q, %v", args[0], p, err)
	}
	ended, done := make(chan string, 1), make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, err := wsRead(br)
			var closed *wsClosed
			switch {
			case errors.As(err, &closed):
				// Answer the close, as a client does, then wait for
				// the server to end the connection.
				_ = wsWriteClose(conn, closed.code)
				_, rest := io.Copy(io.Discard, br)
				ended <- fmt.Sprintf("%v, then the connection ended (%v)", closed, rest)
				return
			case err != nil:
				ended <- fmt.Sprintf("cut without a close frame: %v", err)
				return
			}
		}
	}()
	ts.Defer(func() {
		conn.Close()
		<-done
	})
	wsMu.Lock()
	if wsConns[ts] == nil {
		wsConns[ts] = map[string]chan string{}
	}
	wsConns[ts][args[0]] = ended
	wsMu.Unlock()
}

// wsWriteClose writes a masked close frame with code, as a client
// answers a close.
func wsWriteClose(w io.Writer, code int) error {
	mask := []byte{5, 6, 7, 8}
	p := []byte{byte(code >> 8), byte(code)}
	b := []byte{0x88, 0x80 | byte(len(p))}
	b = append(b, mask...)
	for i, c := range p {
		b = append(b, c^mask[i%4])
	}
	_, err := w.Write(b)
	return err
}

// wsclosed NAME: wait until the server has ended the WebSocket NAME (the
// script's timeout is the bound) and print how: "close CODE REASON, then
// the connection ended", or "cut without a close frame".
func cmdWSClosed(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: wsclosed NAME")
	}
	wsMu.Lock()
	ended := wsConns[ts][args[0]]
	wsMu.Unlock()
	if ended == nil {
		ts.Fatalf("wsclosed: no websocket %q", args[0])
	}
	fmt.Fprintln(ts.Stdout(), <-ended)
}
