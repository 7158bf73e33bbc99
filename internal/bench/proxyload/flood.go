package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// floodRun sends n hostile clients at once to piku's proxy (in a process
// of its own, as the daemon runs it, but without the daemon's connection
// budget) and to nginx, each in front of a page that answers after
// slow: half send 64 KiB of tiny header fields, half 31 KiB in 99 fields,
// which both proxies take and hold while the page answers. It prints what
// the clients got and the peak RSS (VmHWM) of each proxy's processes.
//
//	go run ./internal/bench/proxyload -flood 1000
func floodRun(n int, slow time.Duration, nginxBin string) error {
	backend, err := serve(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(slow)
		io.WriteString(w, "slow")
	}))
	if err != nil {
		return err
	}
	type proxy struct {
		name string
		addr string
		pids func() []int
		stop func()
	}
	var proxies []proxy
	addr, _, pid, stop, err := startOwn(backend, "", "", "", false)
	if err != nil {
		return err
	}
	proxies = append(proxies, proxy{"piku", addr, func() []int { return []int{pid} }, stop})
	if nginxBin == "" {
		for _, c := range []string{"nginx", "/usr/sbin/nginx"} {
			if _, err := os.Stat(c); err == nil || c == "nginx" {
				nginxBin = c
				break
			}
		}
	}
	if nginxBin != "none" {
		addr, _, pid, stop, err := startNginx(nginxBin, backend, 64, "", "", "")
		if err != nil {
			fmt.Fprintln(os.Stderr, "nginx:", err)
		} else {
			proxies = append(proxies, proxy{"nginx", addr, func() []int { return withChildren(pid) }, stop})
		}
	}
	defer func() {
		for _, p := range proxies {
			p.stop()
		}
	}()
	fmt.Printf("%d clients at once, half 64 KiB of tiny header fields, half 31 KiB in 99 fields to a page answering after %s\n\n", n, slow)
	fmt.Printf("%-6s %12s %12s  %s\n", "proxy", "RSS before", "peak RSS", "what the clients got")
	for _, p := range proxies {
		before := vmKB(p.pids(), "VmRSS:")
		got := flood(p.addr, n)
		peak := vmKB(p.pids(), "VmHWM:")
		fmt.Printf("%-6s %9d KB %9d KB  %s\n", p.name, before, peak, got)
	}
	return nil
}

// flood sends n clients at once to addr and sums up their answers.
func flood(addr string, n int) string {
	var tiny, held strings.Builder
	tiny.WriteString("GET / HTTP/1.1\r\nHost: app.test\r\n")
	for i := 0; tiny.Len() < 64<<10; i++ {
		fmt.Fprintf(&tiny, "X-%d: v\r\n", i)
	}
	tiny.WriteString("\r\n")
	held.WriteString("GET / HTTP/1.1\r\nHost: app.test\r\n")
	for i := range 98 {
		fmt.Fprintf(&held, "X-%d: %s\r\n", i, strings.Repeat("v", 310))
	}
	held.WriteString("\r\n")
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for i := range n {
		shape, req := "tiny", tiny.String()
		if i%2 == 1 {
			shape, req = "held", held.String()
		}
		wg.Go(func() {
			result := ""
			c, err := net.Dial("tcp", addr)
			if err == nil {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
				go io.WriteString(c, req)
				var res *http.Response
				if res, err = http.ReadResponse(bufio.NewReader(c), nil); err == nil {
					res.Body.Close()
					result = strconv.Itoa(res.StatusCode)
				}
			}
			if err != nil {
				result = "error"
			}
			mu.Lock()
			counts[shape+" "+result]++
			mu.Unlock()
		})
	}
	wg.Wait()
	var out []string
	for k, v := range counts {
		out = append(out, fmt.Sprintf("%s x %d", k, v))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// vmKB sums a /proc/PID/status line (VmRSS:, VmHWM:) over pids, in KB.
func vmKB(pids []int, field string) int {
	sum := 0
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, field); ok {
				f := strings.Fields(rest)
				if len(f) > 0 {
					k, _ := strconv.Atoi(f[0])
					sum += k
				}
			}
		}
	}
	return sum
}
