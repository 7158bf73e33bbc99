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

// wsRead reads one small frame and returns its payload, unmasked.
func wsRead(r *bufio.Reader) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	if hdr[0]&0x0f == 0x8 {
		return nil, io.EOF // close
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
	return p, nil
}

// wsecho URL HOST MSG...: open a WebSocket to URL with Host HOST, send
// each MSG and print each answer on stdout.
func cmdWSEcho(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 3 || neg {
		ts.Fatalf("usage: wsecho URL HOST MSG...")
	}
	u, err := url.Parse(args[0])
	ts.Check(err)
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	ts.Check(err)
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	k := base64.StdEncoding.EncodeToString(key)
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		u.RequestURI(), args[1], k)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	ts.Check(err)
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(k) {
		ts.Fatalf("wsecho: no upgrade: %s %v", resp.Status, resp.Header)
	}
	for _, msg := range args[2:] {
		mask := make([]byte, 4)
		_, _ = rand.Read(mask)
		ts.Check(wsWrite(conn, []byte(msg), mask))
		p, err := wsRead(br)
		ts.Check(err)
		fmt.Fprintf(ts.Stdout(), "%s\n", p)
	}
}
