package cli

import (
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// hammer N URL HOST: send N GET requests (8 at a time, kept alive) and
// print how many got each status, as "STATUS xCOUNT" lines.
func cmdHammer(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 || neg {
		ts.Fatalf("usage: hammer N URL HOST")
	}
	n, err := strconv.Atoi(args[0])
	ts.Check(err)
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: time.Minute}
	var next atomic.Int64
	var mu sync.Mutex
	counts := map[int]int{}
	var failed error
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				req, _ := http.NewRequest(http.MethodGet, args[1], nil)
				req.Host = args[2]
				res, err := c.Do(req)
				mu.Lock()
				if err != nil {
					failed = err
				} else {
					counts[res.StatusCode]++
				}
				mu.Unlock()
				if err != nil {
					continue
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		})
	}
	wg.Wait()
	if failed != nil {
		ts.Fatalf("hammer: %v", failed)
	}
	for code, k := range counts {
		ts.Stdout().Write([]byte(strconv.Itoa(code) + " x" + strconv.Itoa(k) + "\n"))
	}
}

// summaryCount matches the count a summarised log line states.
var summaryCount = regexp.MustCompile(` repeated=(\d+)`)

// logcount FILE REGEXP TOTAL MAXLINES: the lines of FILE matching REGEXP,
// each counting once plus the repeats it states (repeated=N), add up to
// TOTAL, in at most MAXLINES lines.
func cmdLogCount(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 4 || neg {
		ts.Fatalf("usage: logcount FILE REGEXP TOTAL MAXLINES")
	}
	b, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	re := regexp.MustCompile("(?m)^.*" + args[1] + ".*$")
	total, err := strconv.Atoi(args[2])
	ts.Check(err)
	maxLines, err := strconv.Atoi(args[3])
	ts.Check(err)
	lines := re.FindAllString(string(b), -1)
	sum := 0
	for _, l := range lines {
		if m := summaryCount.FindStringSubmatch(l); m != nil {
			k, _ := strconv.Atoi(m[1])
			sum += k
		} else {
			sum++
		}
	}
	ts.Logf("logcount: %d lines state %d events", len(lines), sum)
	if sum != total || len(lines) > maxLines {
		ts.Fatalf("logcount %s: %d lines stating %d events, want %d events in at most %d lines", args[1], len(lines), sum, total, maxLines)
	}
}
