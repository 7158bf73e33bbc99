package cli

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// buildpiku: build the piku binary as users run it (without the race
// detector the test binary may carry, whose shadow memory would swamp a
// memory measure) into $WORK/bin and set $PIKU_BIN to it.
func cmdBuildPiku(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 0 || neg {
		ts.Fatalf("usage: buildpiku")
	}
	bin := filepath.Join(ts.Getenv("WORK"), "bin", "piku")
	build := exec.Command("go", "build", "-o", bin, "./cmd/piku")
	build.Dir = filepath.Join("..", "..") // the module root, from the package's folder
	if out, err := build.CombinedOutput(); err != nil {
		ts.Fatalf("building piku: %v\n%s", err, out)
	}
	ts.Setenv("PIKU_BIN", bin)
}

// ownMemcg returns the directory of the test's own cgroup v1 memory
// cgroup, if it has one.
func ownMemcg() (string, bool) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && strings.Contains(","+parts[1]+",", ",memory,") {
			return filepath.Join("/sys/fs/cgroup/memory", parts[2]), true
		}
	}
	return "", false
}

// memcg LIMIT: make a cgroup v1 memory cgroup below the test's own, of
// LIMIT bytes (a number with K, M or G) and no swap beyond, and set $CG
// to its directory; it is removed when the script ends. Scripts check
// the condition [memcgv1] first: a cgroup v1 memory controller the test
// may write.
func cmdMemcg(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: memcg LIMIT")
	}
	limit, err := parseBytes(args[0])
	ts.Check(err)
	base, ok := ownMemcg()
	if !ok {
		ts.Fatalf("memcg: no cgroup v1 memory controller")
	}
	dir := filepath.Join(base, "piku-test-"+strconv.Itoa(os.Getpid())+"-"+filepath.Base(ts.Getenv("WORK")))
	ts.Check(os.Mkdir(dir, 0o755))
	ts.Defer(func() { removeCgroup(dir) })
	ts.Check(os.WriteFile(filepath.Join(dir, "memory.limit_in_bytes"), []byte(strconv.FormatInt(limit, 10)), 0))
	if _, err := os.Stat(filepath.Join(dir, "memory.memsw.limit_in_bytes")); err == nil {
		ts.Check(os.WriteFile(filepath.Join(dir, "memory.memsw.limit_in_bytes"), []byte(strconv.FormatInt(limit, 10)), 0))
	}
	ts.Setenv("CG", dir)
}

// removeCgroup removes a cgroup and the ones below it, deepest first,
// once their processes are gone (the script waited for them).
func removeCgroup(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			removeCgroup(filepath.Join(dir, e.Name()))
		}
	}
	os.Remove(dir)
}

func parseBytes(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n * mult, err
}

// headerflood N ADDR HOST: N clients at once send a request for Host HOST
// with a header at or past the proxy's limits: half 64 KiB of tiny fields
// (each must get 431), half 31 KiB in 91 fields (each must be answered:
// they wait for the slow page while their header is held). Every client
// must get its answer.
func cmdHeaderFlood(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 || neg {
		ts.Fatalf("usage: headerflood N ADDR HOST")
	}
	n, err := strconv.Atoi(args[0])
	ts.Check(err)
	var tiny, held strings.Builder
	fmt.Fprintf(&tiny, "GET / HTTP/1.1\r\nHost: %s\r\n", args[2])
	for i := 0; tiny.Len() < 64<<10; i++ {
		fmt.Fprintf(&tiny, "X-%d: v\r\n", i)
	}
	tiny.WriteString("\r\n")
	fmt.Fprintf(&held, "GET / HTTP/1.1\r\nHost: %s\r\n", args[2])
	// 90 fields: the slow page (Python's http.server) takes at most 100,
	// with those the proxy adds.
	for i := range 90 {
		fmt.Fprintf(&held, "X-%d: %s\r\n", i, strings.Repeat("v", 345))
	}
	held.WriteString("\r\n")
	type outcome struct {
		shape  string
		result string
	}
	results := make(chan outcome, n)
	var wg sync.WaitGroup
	for i := range n {
		shape, req, want := "tiny", tiny.String(), 431
		if i%2 == 1 {
			shape, req, want = "held", held.String(), 200
		}
		wg.Go(func() {
			c, err := net.Dial("tcp", args[1])
			if err != nil {
				results <- outcome{shape, "dial: " + err.Error()}
				return
			}
			defer c.Close()
			// A bound only so that a broken proxy cannot hang the test.
			_ = c.SetDeadline(time.Now().Add(5 * time.Minute))
			go io.WriteString(c, req)
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				results <- outcome{shape, "read: " + err.Error()}
				return
			}
			res.Body.Close()
			if res.StatusCode != want {
				results <- outcome{shape, strconv.Itoa(res.StatusCode)}
				return
			}
			results <- outcome{shape, "ok"}
		})
	}
	wg.Wait()
	close(results)
	counts := map[outcome]int{}
	for r := range results {
		counts[r]++
	}
	bad := false
	for o, k := range counts {
		ts.Logf("%s: %s x %d", o.shape, o.result, k)
		if o.result != "ok" {
			bad = true
		}
	}
	if bad {
		ts.Fatalf("not every flooding client got its answer")
	}
}

// memcgreport: log the peak and current RSS of the daemon, the process
// in the memory cgroup $CG itself (its apps are in cgroups below), and the
// cgroup's peak usage, and fail if the kernel killed anything in the
// cgroup for lack of memory.
func cmdMemcgReport(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 0 || neg {
		ts.Fatalf("usage: memcgreport")
	}
	cg := ts.Getenv("CG")
	procs, err := os.ReadFile(filepath.Join(cg, "cgroup.procs"))
	ts.Check(err)
	pid, _, _ := strings.Cut(strings.TrimSpace(string(procs)), "\n")
	st, err := os.ReadFile("/proc/" + pid + "/status")
	ts.Check(err)
	for line := range strings.SplitSeq(string(st), "\n") {
		if strings.HasPrefix(line, "VmHWM:") || strings.HasPrefix(line, "VmRSS:") {
			ts.Logf("daemon %s", strings.Join(strings.Fields(line), " "))
			fmt.Fprintln(ts.Stdout(), strings.Join(strings.Fields(line), " "))
		}
	}
	peak, _ := os.ReadFile(filepath.Join(cg, "memory.max_usage_in_bytes"))
	ts.Logf("cgroup peak usage %s bytes", strings.TrimSpace(string(peak)))
	oom, err := os.ReadFile(filepath.Join(cg, "memory.oom_control"))
	ts.Check(err)
	for line := range strings.SplitSeq(string(oom), "\n") {
		if k, ok := strings.CutPrefix(line, "oom_kill "); ok && k != "0" {
			ts.Fatalf("the kernel killed %s processes of the daemon's cgroup for memory", k)
		}
	}
}
