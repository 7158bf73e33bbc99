package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/piku/piku/internal/deploy"
)

// streams are the scripts' open long-lived requests (an SSE client), by
// script and name; each one's channel is closed when its response ends.
var (
	streamsMu sync.Mutex
	streams   = map[*testscript.TestScript]map[string]*openStream{}
)

// openStream is a stream a script opened: ended is closed when its
// response ends, and err then says how (io.EOF: the whole answer came).
type openStream struct {
	ended chan struct{}
	err   error
}

// streamopen NAME URL HOST: open a long-lived GET URL with Host HOST (an
// event stream) and return once its first line has arrived. The request
// stays open, reading, until the server ends it or the script ends.
func cmdStreamOpen(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 || neg {
		ts.Fatalf("usage: streamopen NAME URL HOST")
	}
	req, err := http.NewRequest(http.MethodGet, args[1], nil)
	ts.Check(err)
	req.Host = args[2]
	// No client timeout: the stream is meant to stay open.
	resp, err := (&http.Client{}).Do(req)
	ts.Check(err)
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		ts.Fatalf("streamopen %s: status %d", args[1], resp.StatusCode)
	}
	r := bufio.NewReader(resp.Body)
	first, err := r.ReadString('\n')
	if err != nil {
		resp.Body.Close()
		ts.Fatalf("streamopen %s: reading the first line: %v", args[1], err)
	}
	ts.Logf("stream %s: first line %q", args[0], strings.TrimSpace(first))
	ended := make(chan struct{})
	st := &openStream{ended: ended}
	go func() {
		defer close(ended)
		for {
			if _, err := r.ReadString('\n'); err != nil {
				st.err = err
				return
			}
		}
	}()
	ts.Defer(func() {
		resp.Body.Close()
		<-ended
	})
	streamsMu.Lock()
	if streams[ts] == nil {
		streams[ts] = map[string]*openStream{}
	}
	streams[ts][args[0]] = st
	streamsMu.Unlock()
}

// streamended NAME: wait until the server has ended the stream NAME (the
// script's timeout is the bound), and print "clean end" when the answer
// ended as a whole one (a chunked answer's terminating chunk), else "cut"
// and the error.
func cmdStreamEnded(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: streamended NAME")
	}
	streamsMu.Lock()
	st := streams[ts][args[0]]
	streamsMu.Unlock()
	if st == nil {
		ts.Fatalf("streamended: no stream %q", args[0])
	}
	<-st.ended
	if st.err == io.EOF {
		fmt.Fprintln(ts.Stdout(), "clean end")
	} else {
		fmt.Fprintf(ts.Stdout(), "cut: %v\n", st.err)
	}
}

// locks are the deploy locks scripts hold, by script and app.
var (
	locksMu sync.Mutex
	locks   = map[*testscript.TestScript]map[string]func(){}
)

// lockapp APP: take APP's deploy lock, as a running push would, until
// unlockapp APP (or the script's end).
func cmdLockApp(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: lockapp APP")
	}
	unlock, err := deploy.Lock(context.Background(), rootOf(ts).DeployLock(args[0]), nil)
	ts.Check(err)
	locksMu.Lock()
	if locks[ts] == nil {
		locks[ts] = map[string]func(){}
	}
	locks[ts][args[0]] = unlock
	locksMu.Unlock()
	ts.Defer(func() { unlockApp(ts, args[0]) })
}

// unlockapp APP: release the lock lockapp took.
func cmdUnlockApp(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: unlockapp APP")
	}
	unlockApp(ts, args[0])
}

func unlockApp(ts *testscript.TestScript, app string) {
	locksMu.Lock()
	unlock := locks[ts][app]
	delete(locks[ts], app)
	locksMu.Unlock()
	if unlock != nil {
		unlock()
	}
}
