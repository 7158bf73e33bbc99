package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/isolation"
	"github.com/piku/piku/internal/layout"
	"github.com/piku/piku/internal/testdeps"
)

// The end-to-end tests are scripts in testdata/script: the test binary
// plays `piku` (daemon included), and the scripts drive it with real
// processes, real HTTP clients and real git. Each script gets its own
// PIKU_ROOT, control socket and loopback ports. UPDATE_GOLDEN=1 rewrites
// the scripts' expected output.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"piku":          func() { os.Exit(Main(os.Args[1:])) },
		"wsecho-server": func() { os.Exit(wsEchoServer()) },
		"status-server": func() { os.Exit(statusServer()) },
	})
}

func TestScripts(t *testing.T) {
	// portBlock hands each script its own block of ports so parallel
	// scripts never race for one. It counts from 0 in every run of
	// TestScripts: -count=3 runs it three times, one after the other.
	var portBlock atomic.Int32
	giveUp := testdeps.Waiting(t)
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		UpdateScripts:       os.Getenv("UPDATE_GOLDEN") == "1",
		Setup: func(env *testscript.Env) error {
			n := int(portBlock.Add(1) - 1)
			if n >= testdeps.ScriptBlocks {
				return fmt.Errorf("more than %d scripts: give them a wider part of the test port window (testdeps.PortsScripts)", testdeps.ScriptBlocks)
			}
			block := testdeps.PortBase() + testdeps.PortsScripts + n*testdeps.ScriptBlock
			root := filepath.Join(env.WorkDir, "root")
			env.Setenv("PIKU_ROOT", root)
			env.Setenv("PIKU_HTTP", "127.0.0.1:"+strconv.Itoa(block))
			env.Setenv("HTTP_PORT", strconv.Itoa(block))
			env.Setenv("PIKU_HTTPS", "127.0.0.1:"+strconv.Itoa(block+1))
			env.Setenv("HTTPS_PORT", strconv.Itoa(block+1))
			env.Setenv("METRICS_PORT", metricsPort(block))
			env.Setenv("PINNED_PORT", strconv.Itoa(block+3)) // for an app that pins PORT
			env.Setenv("PIKU_PORTS", fmt.Sprintf("%d-%d", block+10, block+testdeps.ScriptBlock-1))
			env.Setenv("PIKU_ACME", "false")
			env.Setenv("PIKU_SHUTDOWN_TIMEOUT", "20s")
			env.Setenv("HOME", filepath.Join(env.WorkDir, "home"))
			env.Setenv("USER", "piku")
			env.Setenv("PATH", os.Getenv("PATH"))
			env.Values[giveUpKey{}] = giveUp
			env.Defer(func() { killLeftovers(root) })
			newSlowClients(env)
			return os.MkdirAll(filepath.Join(env.WorkDir, "home"), 0o755)
		},
		Condition: scriptCondition,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitdaemon":  cmdWaitDaemon,
			"waitps":      cmdWaitPS,
			"waithttp":    cmdWaitHTTP,
			"httpget":     cmdHTTPGet,
			"httppost":    cmdHTTPPost,
			"waitfile":    cmdWaitFile,
			"psfield":     cmdPSField,
			"alive":       cmdAlive,
			"groupgone":   cmdGroupGone,
			"procs":       cmdProcs,
			"waitfiles":   cmdWaitFiles,
			"wsecho":      cmdWSEcho,
			"loadstart":   cmdLoadStart,
			"loadcheck":   cmdLoadCheck,
			"streamopen":  cmdStreamOpen,
			"streamended": cmdStreamEnded,
			"lockapp":     cmdLockApp,
			"unlockapp":   cmdUnlockApp,
			"waitmetric":  cmdWaitMetric,
			"jsonfield":   cmdJSONField,
			"tmux":        cmdTmux,
			"holdconns":   cmdHoldConns,
			"hammer":      cmdHammer,
			"logcount":    cmdLogCount,
			"slowstart":   cmdSlowStart,
			"slowfinish":  cmdSlowFinish,
			"httpstart":   cmdHTTPStart,
			"httpwait":    cmdHTTPWait,
			"wsopen":      cmdWSOpen,
			"wsclosed":    cmdWSClosed,
			"stallread":   cmdStallRead,
			"memcg":       cmdMemcg,
			"buildpiku":   cmdBuildPiku,
			"headerflood": cmdHeaderFlood,
			"memcgreport": cmdMemcgReport,
		},
	})
}

// giveUpKey holds, in each script's values, the context that ends just
// before the test's own timeout: the wait commands wait for their event
// until then, never for a guessed time, since machines running the tests
// are noisy. A wait returns as soon as its condition holds.
type giveUpKey struct{}

// polling calls cond every 50ms until it reports true or the test is about
// to time out, and reports whether cond held.
func polling(ts *testscript.TestScript, cond func() bool) bool {
	giveUp := ts.Value(giveUpKey{}).(context.Context)
	for !cond() {
		select {
		case <-giveUp.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	return true
}

func rootOf(ts *testscript.TestScript) layout.Root {
	r, err := layout.New(ts.Getenv("PIKU_ROOT"))
	ts.Check(err)
	return r
}

// waitdaemon: wait until the daemon answers on its socket.
func cmdWaitDaemon(ts *testscript.TestScript, neg bool, args []string) {
	c := control.NewClient(rootOf(ts).Socket())
	var err error
	polling(ts, func() bool {
		_, err = c.Ping(context.Background())
		return (err == nil) != neg
	})
	if neg != (err != nil) {
		ts.Fatalf("waitdaemon: %v", err)
	}
}

// psLines renders an app's instances as "kind.N state pid port" lines.
func psLines(ts *testscript.TestScript, app string) (string, error) {
	st, err := control.NewClient(rootOf(ts).Socket()).Status(context.Background(), app)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, in := range st.Instances {
		fmt.Fprintf(&b, "%s.%d %s %d %d restarts=%d gen=%d\n", in.Kind, in.N, in.State, in.PID, in.Port, in.Restarts, in.Generation)
	}
	for _, j := range st.Cron {
		fmt.Fprintf(&b, "%s cron running=%v last_exit=%s\n", j.Name, j.Running, j.LastExit)
	}
	return b.String(), nil
}

// waitps APP REGEXP: wait until the app's instance lines (and cron lines,
// "NAME cron running=BOOL last_exit=EXIT") match REGEXP
// (multi-line mode); with !, until they do not.
func cmdWaitPS(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: waitps APP REGEXP")
	}
	re := regexp.MustCompile("(?m)" + args[1])
	var last string
	if polling(ts, func() bool {
		out, err := psLines(ts, args[0])
		if err == nil {
			last = out
		}
		return err == nil && re.MatchString(out) != neg
	}) {
		return
	}
	ts.Fatalf("waitps %s %q: gave up; last state:\n%s", args[0], args[1], last)
}

// psfield APP KIND.N FIELD VAR: store one field (pid, port, restarts,
// started: the start time in Unix seconds) of an
// instance in the environment variable VAR.
func cmdPSField(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 4 {
		ts.Fatalf("usage: psfield APP KIND.N pid|port|restarts|started VAR")
	}
	st, err := control.NewClient(rootOf(ts).Socket()).Status(context.Background(), args[0])
	ts.Check(err)
	for _, in := range st.Instances {
		if fmt.Sprintf("%s.%d", in.Kind, in.N) != args[1] {
			continue
		}
		var v int
		switch args[2] {
		case "pid":
			v = in.PID
		case "port":
			v = in.Port
		case "restarts":
			v = in.Restarts
		case "started": // Unix time, in seconds
			v = int(in.StartedAt.Unix())
		default:
			ts.Fatalf("psfield: unknown field %q", args[2])
		}
		ts.Setenv(args[3], strconv.Itoa(v))
		return
	}
	ts.Fatalf("psfield: %s has no instance %s", args[0], args[1])
}

// httpGet does one GET with an optional Host header.
func httpGet(url, host string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := testClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if loc := resp.Header.Get("Location"); loc != "" {
		b = append([]byte("Location: "+loc+"\n"), b...)
	}
	if proto := resp.Proto; resp.TLS != nil {
		b = append([]byte("Proto: "+proto+"\n"), b...)
	}
	return resp.StatusCode, string(b), err
}

// testClient does not follow redirects (scripts check them) and takes
// the proxy's self-signed certificates.
var testClient = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
	Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2: true,
	},
}

// waithttp [-host H] URL REGEXP: wait until GET URL answers 2xx with a body
// matching REGEXP.
func cmdWaitHTTP(ts *testscript.TestScript, neg bool, args []string) {
	host := ""
	if len(args) > 2 && args[0] == "-host" {
		host, args = args[1], args[2:]
	}
	if len(args) != 2 {
		ts.Fatalf("usage: waithttp [-host H] URL REGEXP")
	}
	re := regexp.MustCompile(args[1])
	var last string
	if polling(ts, func() bool {
		code, body, err := httpGet(args[0], host)
		last = fmt.Sprintf("%d %q %v", code, body, err)
		return (err == nil && code/100 == 2 && re.MatchString(body)) != neg
	}) {
		return
	}
	ts.Fatalf("waithttp %s: gave up; last answer: %s", args[0], last)
}

// httpget [-host H] URL: GET once; the status code and body go to stdout.
func cmdHTTPGet(ts *testscript.TestScript, neg bool, args []string) {
	host := ""
	if len(args) > 2 && args[0] == "-host" {
		host, args = args[1], args[2:]
	}
	if len(args) != 1 {
		ts.Fatalf("usage: httpget [-host H] URL")
	}
	code, body, err := httpGet(args[0], host)
	if (err != nil) != neg {
		ts.Fatalf("httpget %s: %v", args[0], err)
	}
	fmt.Fprintf(ts.Stdout(), "%d\n%s", code, body)
}

// httppost [-chunked] [-host H] URL BODY: POST BODY once, on a
// connection of its own (chunked, with -chunked); the status code and
// body go to stdout.
func cmdHTTPPost(ts *testscript.TestScript, neg bool, args []string) {
	chunked := false
	if len(args) > 0 && args[0] == "-chunked" {
		chunked, args = true, args[1:]
	}
	host := ""
	if len(args) > 2 && args[0] == "-host" {
		host, args = args[1], args[2:]
	}
	if len(args) != 2 {
		ts.Fatalf("usage: httppost [-chunked] [-host H] URL BODY")
	}
	var body io.Reader = strings.NewReader(args[1])
	if chunked {
		body = struct{ io.Reader }{body} // of unknown length: sent chunked
	}
	req, err := http.NewRequest(http.MethodPost, args[0], body)
	ts.Check(err)
	if host != "" {
		req.Host = host
	}
	req.Close = true
	resp, err := testClient.Do(req)
	if (err != nil) != neg {
		ts.Fatalf("httppost %s: %v", args[0], err)
	}
	if err != nil {
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	ts.Check(err)
	fmt.Fprintf(ts.Stdout(), "%d\n%s", resp.StatusCode, b)
}

// waitfile PATH REGEXP: wait until the file exists and matches.
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: waitfile PATH REGEXP")
	}
	re := regexp.MustCompile("(?m)" + args[1])
	path := ts.MkAbs(args[0])
	if polling(ts, func() bool {
		b, err := os.ReadFile(path)
		return (err == nil && re.Match(b)) != neg
	}) {
		return
	}
	b, _ := os.ReadFile(path)
	ts.Fatalf("waitfile %s %q: gave up; content:\n%s", args[0], args[1], b)
}

// alive PID: the process exists (and is not a zombie); with !, it is gone.
func cmdAlive(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: alive PID")
	}
	pid, err := strconv.Atoi(args[0])
	ts.Check(err)
	var alive bool
	if polling(ts, func() bool {
		alive = processAlive(pid)
		return alive != neg
	}) {
		return
	}
	ts.Fatalf("alive %d: got alive=%v", pid, alive)
}

// groupgone MARKER: no process of the script whose command line contains
// MARKER is left (orphans and zombies included); waits until it holds.
func cmdGroupGone(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: groupgone MARKER")
	}
	var found []int
	if polling(ts, func() bool {
		found = processesWith(args[0], ts.Getenv("WORK"))
		return (len(found) == 0) != neg
	}) {
		return
	}
	ts.Fatalf("groupgone %q: processes %v", args[0], found)
}

// procs MARKER N: exactly N live processes of the script have MARKER in
// their command line (waits until it holds).
func cmdProcs(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: procs MARKER N")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	var found []int
	if polling(ts, func() bool {
		found = processesWith(args[0], ts.Getenv("WORK"))
		return (len(found) == n) != neg
	}) {
		return
	}
	ts.Fatalf("procs %q: want %d, found %v", args[0], n, found)
}

func processAlive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i > 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// processesWith lists the pids whose command line contains marker and
// whose working directory is under dir (possibly removed since): a test's
// own processes, never those of another test (or another run of the tests
// on the machine) that happen to run the same command.
func processesWith(marker, dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil || !strings.HasPrefix(cwd, dir+"/") {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), marker) && processAlive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killLeftovers kills any process still running from a script's root, so a
// failed script cannot leave processes behind for the next one.
func killLeftovers(root string) {
	for _, pid := range processesWithCwd(root) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	unmountUnder(root)
	// The cgroups a daemon killed with SIGKILL could not remove.
	isolation.DetectCgroups("/sys/fs/cgroup", root).Close()
}

// unmountUnder detaches what a failed script left mounted below dir (a
// small tmpfs filled to play a full disk), so its folder can be removed.
func unmountUnder(dir string) {
	b, _ := os.ReadFile("/proc/self/mounts")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			_ = syscall.Unmount(f[1], syscall.MNT_DETACH)
		}
	}
}

func processesWithCwd(prefix string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err == nil && strings.HasPrefix(cwd, prefix) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitfiles DIR REGEXP N: wait until exactly N files in DIR have names
// matching REGEXP (the whole name).
func cmdWaitFiles(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 || neg {
		ts.Fatalf("usage: waitfiles DIR REGEXP N")
	}
	re := regexp.MustCompile("^(?:" + args[1] + ")$")
	want, err := strconv.Atoi(args[2])
	ts.Check(err)
	var names []string
	if polling(ts, func() bool {
		ents, _ := os.ReadDir(ts.MkAbs(args[0]))
		names = names[:0]
		for _, e := range ents {
			if re.MatchString(e.Name()) {
				names = append(names, e.Name())
			}
		}
		return len(names) == want
	}) {
		return
	}
	ts.Fatalf("waitfiles %s %q: want %d, have %q", args[0], args[1], want, names)
}

// scriptCondition answers the scripts' own conditions: [cgroupv1] holds
// where the tests may create cgroups in the cgroup v1 pids hierarchy, as
// the daemon does for its apps' limits; [cgroupv1memory] where a daemon
// would enforce memory limits with the cgroup v1 memory controller; [landlock] where the kernel
// offers Landlock, with which the daemon confines its apps.
func scriptCondition(cond string) (bool, error) {
	switch cond {
	case "landlock":
		abi, _ := isolation.LandlockABI()
		return abi > 0, nil
	case "cgroupv1memory":
		r := isolation.Probe("/sys/fs/cgroup")
		return r.Mode == isolation.ModeCgroupV1 && slices.Contains(r.Controllers, "memory"), nil
	case "cgroupv1":
		dir := "/sys/fs/cgroup/pids/piku-probe-" + strconv.Itoa(os.Getpid())
		if err := os.Mkdir(dir, 0o755); err != nil {
			return false, nil
		}
		return true, os.Remove(dir)
	case "memcgv1":
		dir, ok := ownMemcg()
		if !ok {
			return false, nil
		}
		probe := filepath.Join(dir, "piku-probe-"+strconv.Itoa(os.Getpid()))
		if err := os.Mkdir(probe, 0o755); err != nil {
			return false, nil
		}
		return true, os.Remove(probe)
	}
	return false, fmt.Errorf("unknown condition %q", cond)
}
