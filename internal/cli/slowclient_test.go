package cli

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"
)

// Slow clients, driven by the script: a slow uploader sends half of its
// body and the rest only when the script says so; a slow reader sends
// its request and reads nothing until the script says so. What happens
// meanwhile is ordering, not timing.

// slowClientsKey holds, in each script's values, its slow clients.
type slowClientsKey struct{}

// slowClients are a script's slow clients by name.
type slowClients struct {
	mu sync.Mutex
	m  map[string]*slowClient
}

// slowClient is one connection held open by the script.
type slowClient struct {
	c    net.Conn
	rest int // bytes of body still to send
}

func newSlowClients(env *testscript.Env) {
	sc := &slowClients{m: map[string]*slowClient{}}
	env.Values[slowClientsKey{}] = sc
	env.Defer(func() {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		for _, c := range sc.m {
			c.c.Close()
		}
	})
}

// slowstart NAME METHOD URL HOST [SIZE]: open a connection to URL's
// host and send METHOD URL for Host HOST; a POST announces a body of
// SIZE bytes and sends half of it. Nothing is read.
func cmdSlowStart(ts *testscript.TestScript, neg bool, args []string) {
	if neg || (len(args) != 4 && len(args) != 5) {
		ts.Fatalf("usage: slowstart NAME METHOD URL HOST [SIZE]")
	}
	name, method, host := args[0], args[1], args[3]
	u, err := url.Parse(args[2])
	ts.Check(err)
	size := 0
	if len(args) == 5 {
		size, err = strconv.Atoi(args[4])
		ts.Check(err)
	}
	c, err := net.Dial("tcp", u.Host)
	ts.Check(err)
	sc := ts.Value(slowClientsKey{}).(*slowClients)
	sc.mu.Lock()
	sc.m[name] = &slowClient{c: c, rest: size - size/2}
	sc.mu.Unlock()
	head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\n", method, u.RequestURI(), host)
	if size > 0 {
		head += fmt.Sprintf("Content-Length: %d\r\n", size)
	}
	_, err = io.WriteString(c, head+"\r\n"+strings.Repeat("x", size/2))
	ts.Check(err)
}

// slowfinish NAME: send the rest of NAME's body, read its answer, and
// write its status and its body (or, beyond 1000 bytes, its length) to
// stdout.
func cmdSlowFinish(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: slowfinish NAME")
	}
	sc := ts.Value(slowClientsKey{}).(*slowClients)
	sc.mu.Lock()
	c := sc.m[args[0]]
	sc.mu.Unlock()
	if c == nil {
		ts.Fatalf("slowfinish: no slow client %s", args[0])
	}
	_, err := io.WriteString(c.c, strings.Repeat("x", c.rest))
	ts.Check(err)
	res, err := http.ReadResponse(bufio.NewReader(c.c), nil)
	ts.Check(err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	ts.Check(err)
	if len(b) > 1000 {
		fmt.Fprintf(ts.Stdout(), "%d\n%d bytes\n", res.StatusCode, len(b))
		return
	}
	fmt.Fprintf(ts.Stdout(), "%d\n%s", res.StatusCode, b)
}
