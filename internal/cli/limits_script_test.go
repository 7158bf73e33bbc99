package cli

import (
	"bufio"
	"context"
	"io"
	"net"
	"regexp"
	"strconv"
	"syscall"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/piku/piku/internal/control"
)

// metricValue returns the value of SERIES in the daemon's /metrics, read
// on its socket, and whether it has one.
func metricValue(ts *testscript.TestScript, series string) (float64, bool) {
	b, err := control.NewClient(rootOf(ts).Socket()).Metrics(context.Background())
	if err != nil {
		return 0, false
	}
	m := regexp.MustCompile("(?m)^" + regexp.QuoteMeta(series) + " (\\S+)$").FindSubmatch(b)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	return v, err == nil
}

// smallWindowConn connects to addr with a 4 KiB receive buffer, so that
// not reading stops the server's writes soon.
func smallWindowConn(addr string) (net.Conn, error) {
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		rc.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return err
	}}
	return d.Dial("tcp", addr)
}

// stallread ADDR HOST PATH SIZE: request PATH (SIZE bytes) from ADDR with
// Host HOST and read nothing; wait until the daemon closed the connection
// (its piku_proxy_connections_open went up by it, then back down), then
// read what had reached the client: fewer than SIZE bytes, then the end.
func cmdStallRead(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 4 || neg {
		ts.Fatalf("usage: stallread ADDR HOST PATH SIZE")
	}
	size, err := strconv.ParseInt(args[3], 10, 64)
	ts.Check(err)
	const series = "piku_proxy_connections_open"
	before, ok := metricValue(ts, series)
	if !ok {
		ts.Fatalf("no %s in /metrics", series)
	}
	c, err := smallWindowConn(args[0])
	ts.Check(err)
	defer c.Close()
	_, err = io.WriteString(c, "GET "+args[2]+" HTTP/1.1\r\nHost: "+args[1]+"\r\n\r\n")
	ts.Check(err)
	if !polling(ts, func() bool { v, _ := metricValue(ts, series); return v > before }) {
		ts.Fatalf("%s never went above %v", series, before)
	}
	if !polling(ts, func() bool { v, _ := metricValue(ts, series); return v <= before }) {
		ts.Fatalf("the daemon never closed the connection of a client that does not read")
	}
	n, err := io.Copy(io.Discard, bufio.NewReader(c))
	ts.Logf("read %d bytes of a %d-byte answer after the cut (%v)", n, size, err)
	if n >= size {
		ts.Fatalf("read %d bytes: the whole answer", n)
	}
}
