package isolation

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/piku/piku/internal/procgroup"
)

// AppProcess says which app a process belongs to, and why it was taken for
// one of the app's.
type AppProcess struct {
	// App is the app's name; "" when the process is an app's but which
	// app could not be told.
	App string
	// PID is the process that was asked about.
	PID int
	// Reason says what marked it: the daemon or `piku run` among its
	// ancestors, or the app's mark in its environment.
	Reason string
}

// maxDepth bounds the walk up the parent chain; no real chain is this deep.
const maxDepth = 1024

// Owner reports whether pid is one of an app's processes, and which app's.
// daemonPID is the supervising daemon's pid (0 when unknown). A process is
// an app's when, on its chain of parents up to init:
//   - it or an ancestor carries the mark every supervised, cron, build
//     and `piku run` process is started with (procgroup.TagVar), whose
//     APP variable names the app;
//   - an ancestor is the daemon (daemonPID), or a process running
//     `piku daemon`: the daemon is the child subreaper of everything it
//     starts, so a daemonised grandchild that left its group and cleared
//     its environment is still below it;
//   - an ancestor is a `piku run APP` process, which is the subreaper of
//     what it runs while it lasts.
//
// The process itself counts only by its mark: the operator's own
// `piku run` or `piku daemon` is not an app's process. What a process of
// the same Unix user could forge (its ancestors' memory, through ptrace)
// is out of reach of this check; see docs/SUPERVISOR.md.
func Owner(pid, daemonPID int) (AppProcess, bool) {
	self, _ := os.Executable()
	p := pid
	for depth := 0; depth < maxDepth && p > 1; depth++ {
		if p != pid {
			if p == daemonPID {
				return AppProcess{App: appFromChain(pid, p), PID: pid, Reason: "started by the piku daemon"}, true
			}
			if args, ok := pikuArgs(p, self); ok {
				switch cmd, rest := subcommand(args); cmd {
				case "daemon":
					return AppProcess{App: appFromChain(pid, p), PID: pid, Reason: "started by the piku daemon"}, true
				case "run":
					app := ""
					if len(rest) > 0 {
						app = rest[0]
					}
					return AppProcess{App: app, PID: pid, Reason: "started by `piku run`"}, true
				}
			}
		}
		if app, ok := marked(p); ok {
			return AppProcess{App: app, PID: pid, Reason: "marked as an app's process"}, true
		}
		pp, err := parent(p)
		if err != nil {
			return AppProcess{}, false
		}
		p = pp
	}
	return AppProcess{}, false
}

// appFromChain names the app of pid, a descendant of top: the APP
// variable of the first process between them started with an app's
// environment.
func appFromChain(pid, top int) string {
	for p, depth := pid, 0; p > 1 && p != top && depth < maxDepth; depth++ {
		env := environ(p)
		if app := envValue(env, "APP"); app != "" {
			return app
		}
		pp, err := parent(p)
		if err != nil {
			break
		}
		p = pp
	}
	return ""
}

// marked reports whether pid's environment carries an app's mark, and the
// app it names.
func marked(pid int) (string, bool) {
	env := environ(pid)
	if envValue(env, procgroup.TagVar) == "" {
		return "", false
	}
	return envValue(env, "APP"), true
}

func environ(pid int) []byte {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	return b
}

// envValue returns the value of key in a NUL-separated environment block.
func envValue(env []byte, key string) string {
	prefix := []byte(key + "=")
	for _, kv := range bytes.Split(env, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, prefix); ok {
			return string(v)
		}
	}
	return ""
}

// parent returns the parent pid of pid, from /proc/PID/stat.
func parent(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, os.ErrInvalid
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 2 {
		return 0, os.ErrInvalid
	}
	return strconv.Atoi(string(f[1]))
}

// pikuArgs returns the command line of pid when it runs piku: the same
// executable as the caller, or one named piku.
func pikuArgs(pid int, self string) ([]string, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return nil, false
	}
	args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	exe = strings.TrimSuffix(exe, " (deleted)")
	if filepath.Base(args[0]) != "piku" && (self == "" || exe != self) {
		return nil, false
	}
	return args, true
}

// subcommand returns the piku subcommand of a command line and the
// positional words after it, skipping the root flags (--root DIR,
// --remote NAME, --local).
func subcommand(args []string) (string, []string) {
	var words []string
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			words = append(words, args[i+1:]...)
			i = len(args)
		case a == "--root" || a == "--remote":
			i++
		case strings.HasPrefix(a, "-"):
		default:
			words = append(words, a)
		}
	}
	if len(words) == 0 {
		return "", nil
	}
	return words[0], words[1:]
}
