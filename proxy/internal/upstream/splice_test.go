//go:build linux

package upstream

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"testing"

	"github.com/piku/piku/proxy/internal/splice"
)

// TestSpliceRestCompletesTheChunk: a chunked answer relayed through a
// pipe and handed to a copy while the client's chunk under way still
// owes data (the app had not sent it yet) gets that chunk completed by
// SpliceRest, and the copy goes on from the next byte: the pipe's bytes,
// SpliceRest's and the rest re-framed make the app's data, whole.
func TestSpliceRestCompletesTheChunk(t *testing.T) {
	data := make([]byte, 1<<20)
	rand.Read(data)
	const first = 100 << 10 // sent before the app waits
	release := make(chan struct{})
	addr, _ := countingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		fmt.Fprintf(brw, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n", len(data))
		brw.Write(data[:first])
		brw.Flush()
		<-release
		brw.Write(data[first:])
		brw.WriteString("\r\n0\r\n\r\n")
		brw.Flush()
	})
	cl, pool := testClient(), &Pool{}
	req := &Request{R: httptest.NewRequest(http.MethodGet, "http://app.test/", nil), Fields: allFields{}, Header: http.Header{}}
	x, err := cl.RoundTrip(pool, addr, req)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Finish()
	var pl splice.Pool
	pl.Max = 1
	p := pl.Get()
	var wire bytes.Buffer // what the client would get
	moved := 0
	for moved < first {
		n, err := x.SpliceTo(p, splice.Size)
		if err != nil {
			t.Fatalf("SpliceTo after %d bytes: %v", moved, err)
		}
		moved += n
		if _, err := io.Copy(&wire, p); err != nil {
			t.Fatal(err)
		}
	}
	if moved != first {
		t.Fatalf("moved %d bytes, want the %d the app sent", moved, first)
	}
	// The client's chunk under way owes what the app has not sent.
	close(release)
	rest, err := x.SpliceRest()
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) < 3 || !bytes.HasSuffix(rest, []byte("\r\n")) {
		t.Fatalf("SpliceRest = %d bytes, want the chunk's owed data and its CRLF", len(rest))
	}
	wire.Write(rest)
	tail, err := io.ReadAll(x)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&wire, "%x\r\n%s\r\n0\r\n\r\n", len(tail), tail)
	got, err := io.ReadAll(httputil.NewChunkedReader(bufio.NewReader(&wire)))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the client's chunks carry %d bytes (%v), want the app's %d", len(got), err, len(data))
	}
}
