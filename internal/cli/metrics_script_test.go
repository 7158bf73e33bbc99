package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/piku/piku/internal/control"
)

// waitmetric SERIES VALUE: wait until the daemon's /metrics (on its
// socket) has a line "SERIES VALUE", VALUE a regular expression matching
// the whole value; with !, until it has not.
func cmdWaitMetric(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: waitmetric SERIES VALUE")
	}
	want := regexp.MustCompile("(?m)^" + regexp.QuoteMeta(args[0]) + " (?:" + args[1] + ")$")
	c := control.NewClient(rootOf(ts).Socket())
	var last string
	if polling(ts, func() bool {
		b, err := c.Metrics(context.Background())
		if err != nil {
			last = err.Error()
			return false
		}
		last = string(b)
		return want.MatchString(last) != neg
	}) {
		return
	}
	var lines []string
	name, _, _ := strings.Cut(args[0], "{")
	for l := range strings.SplitSeq(last, "\n") {
		if strings.HasPrefix(l, name) {
			lines = append(lines, l)
		}
	}
	ts.Fatalf("waitmetric %s %s: gave up; last values:\n%s", args[0], args[1], strings.Join(lines, "\n"))
}

// jsonfield FILE PATH VALUE: the JSON value at PATH in FILE, rendered as
// JSON, is VALUE. PATH is /-separated: object keys, and for arrays the
// element whose "app" or "process" is the segment.
func cmdJSONField(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: jsonfield FILE PATH VALUE")
	}
	b, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	var v any
	ts.Check(json.Unmarshal(b, &v))
	for seg := range strings.SplitSeq(args[1], "/") {
		switch x := v.(type) {
		case map[string]any:
			v = x[seg]
		case []any:
			v = nil
			for _, e := range x {
				if m, ok := e.(map[string]any); ok && (m["app"] == seg || m["process"] == seg) {
					v = m
				}
			}
		default:
			v = nil
		}
	}
	got, err := json.Marshal(v)
	ts.Check(err)
	if (string(got) == args[2]) == neg {
		ts.Fatalf("jsonfield %s %s: %s, want %s%s", args[0], args[1], got, map[bool]string{true: "not "}[neg], args[2])
	}
}

// tmux start NAME COMMAND...: run COMMAND in a new detached tmux session
// NAME on a server of its own (120x30); tmux screen NAME REGEXP: wait
// until the session's screen matches REGEXP (with !, until it does not)
// and print it; tmux keys NAME KEY...: send keys; tmux gone NAME: wait
// until the session ended. The server is killed when the script ends.
//
// One server (socket) per session: a server exits when its last session
// ends, and a session started on the same socket meanwhile reaches the
// dying server and fails ("server exited unexpectedly").
func cmdTmux(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: tmux start|screen|keys|gone NAME ...")
	}
	sock := ts.MkAbs("tmux-" + args[1] + ".sock")
	run := func(a ...string) (string, error) {
		cmd := exec.Command("tmux", append([]string{"-S", sock}, a...)...)
		cmd.Env = append(os.Environ(), "PATH="+ts.Getenv("PATH"), "PIKU_ROOT="+ts.Getenv("PIKU_ROOT"),
			"HOME="+ts.Getenv("HOME"), "TMUX=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	name := args[1]
	switch args[0] {
	case "start":
		ts.Defer(func() { _, _ = run("kill-server") })
		// remain-on-exit off: the session ends with its command.
		out, err := run(append([]string{"new-session", "-d", "-s", name, "-x", "120", "-y", "30"}, args[2:]...)...)
		if err != nil {
			ts.Fatalf("tmux new-session: %v\n%s", err, out)
		}
	case "screen":
		if len(args) != 3 {
			ts.Fatalf("usage: tmux screen NAME REGEXP")
		}
		re := regexp.MustCompile("(?m)" + args[2])
		var screen string
		if polling(ts, func() bool {
			out, err := run("capture-pane", "-p", "-t", name)
			if err != nil {
				ts.Fatalf("tmux capture-pane: %v\n%s", err, out)
			}
			screen = out
			return re.MatchString(screen) != neg
		}) {
			fmt.Fprint(ts.Stdout(), screen)
			return
		}
		ts.Fatalf("tmux screen %q: gave up; the screen:\n%s", args[2], screen)
	case "keys":
		if out, err := run(append([]string{"send-keys", "-t", name}, args[2:]...)...); err != nil {
			ts.Fatalf("tmux send-keys: %v\n%s", err, out)
		}
	case "gone":
		if polling(ts, func() bool {
			_, err := run("has-session", "-t", name)
			return err != nil
		}) {
			return
		}
		ts.Fatalf("tmux session %s still there when the test's time ran out", name)
	default:
		ts.Fatalf("tmux: unknown verb %q", args[0])
	}
}

// metricsPort is the script's TCP port for PIKU_METRICS, within its block.
func metricsPort(block int) string { return strconv.Itoa(block + 2) }
