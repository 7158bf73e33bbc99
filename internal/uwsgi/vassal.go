// Package uwsgi writes the uWSGI vassal .ini files that run an app's
// wsgi-family and php entries, with the keys and UWSGI_* settings Python
// piku used, and checks that uWSGI and the plugins they need are installed.
//
// Differences from piku's vassals, all because piku's own supervisor runs
// `uwsgi --ini FILE` directly instead of the uWSGI emperor, and its own proxy
// stands in for nginx:
//
//   - uWSGI serves HTTP itself on the instance's port: "http-socket =
//     BIND:$(PORT)". uWSGI expands $(PORT) from its environment when it
//     reads the file, so one file serves every start of an instance while
//     the supervisor picks the port. There is no nginx socket and no
//     separate http router process ("http", "http-use-socket").
//   - It stays in the foreground and logs to stderr (no logto, log-maxsize,
//     uid, gid): the supervisor captures and rotates the output.
//   - "die-on-term = true" makes SIGTERM a graceful stop, and "need-app =
//     true" (wsgi family) makes an app that fails to load exit instead of
//     serving errors.
//   - UWSGI_IDLE sets cheap and idle (workers start on demand and stop when
//     idle) but not die-on-idle: the master stays up, so an idle app is not
//     restarted over and over by the supervisor.
//   - "env = KEY=VALUE" lines are written as piku did, except for PORT
//     (set per start) and values uWSGI would change while reading the file
//     (newlines, "$(", "@(", '%'); the app still gets those because uWSGI
//     inherits the supervisor's environment.
package uwsgi

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/piku/piku/internal/shell"
	"github.com/piku/piku/procfile"
)

// Defaults of the UWSGI_* settings when the app leaves them unset: the
// values Python piku's spawn_worker writes (piku.py, spawn_worker,
// env.get('UWSGI_...', DEFAULT)), so an app behaves as it did under piku.
const (
	// DefaultMaxRequests is UWSGI_MAX_REQUESTS: piku's '1024'.
	DefaultMaxRequests = "1024"
	// DefaultListen is UWSGI_LISTEN, the socket backlog: piku's '48'.
	DefaultListen = "48"
	// DefaultProcesses is UWSGI_PROCESSES: piku's '2'.
	DefaultProcesses = "2"
	// DefaultEnableThreads is UWSGI_ENABLE_THREADS: piku's 'true'.
	DefaultEnableThreads = "true"
	// DefaultLogXForwardedFor is UWSGI_LOG_X_FORWARDED_FOR: piku's 'false'.
	DefaultLogXForwardedFor = "false"
	// DefaultThreads is UWSGI_THREADS (wsgi, jwsgi, rwsgi): piku's '4'.
	DefaultThreads = "4"
	// DefaultPythonVersion is PYTHON_VERSION: piku's '3'.
	DefaultPythonVersion = "3"
)

// Options describe one vassal.
type Options struct {
	// App is the app name (uWSGI's project and process name prefix).
	App string
	// Kind is the Procfile kind: wsgi, jwsgi, rwsgi or php.
	Kind string
	// Command is the entry's command: the module for the wsgi family, the
	// document root (relative to AppDir) for php.
	Command string
	// AppDir is the app's checkout, the vassal's chdir.
	AppDir string
	// VirtualEnv is the app's build environment (envs/APP); it becomes
	// "virtualenv" only when it holds a real virtualenv.
	VirtualEnv string
	// Env is the app's environment: UWSGI_*, PYTHON_VERSION and
	// BIND_ADDRESS are read from it and each variable becomes an env line.
	// May be nil.
	Env *procfile.Env
}

// Setting is one "key = value" line of a vassal.
type Setting struct{ Key, Value string }

func (o Options) get(key, def string) string {
	if o.Env != nil {
		if v, ok := o.Env.Get(key); ok {
			return v
		}
	}
	return def
}

func (o Options) has(key string) bool {
	if o.Env == nil {
		return false
	}
	_, ok := o.Env.Get(key)
	return ok
}

// positive reads a whole-number setting from the environment.
func (o Options) positive(key, def string, min int) (string, error) {
	v := strings.TrimSpace(o.get(key, def))
	n, err := strconv.Atoi(v)
	if err != nil || n < min {
		return "", fmt.Errorf("%s=%q: must be a whole number from %d", key, v, min)
	}
	return strconv.Itoa(n), nil
}

func boolean(v string) string {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "on", "true", "enabled", "yes", "y":
		return "true"
	}
	return "false"
}

// Plugins lists the uWSGI plugins a vassal of kind loads with env, in the
// order they are written.
func Plugins(kind string, env *procfile.Env) ([]string, error) {
	o := Options{Kind: kind, Env: env}
	switch kind {
	case procfile.KindWSGI:
		if o.get("PYTHON_VERSION", DefaultPythonVersion) == "2" {
			p := []string{"python"}
			if o.has("UWSGI_GEVENT") {
				p = append(p, "gevent_python")
			} else if o.has("UWSGI_ASYNCIO") {
				p = append(p, "asyncio_python")
			}
			return p, nil
		}
		p := []string{"python3"}
		if o.has("UWSGI_GEVENT") {
			p = append(p, "gevent_python3")
		} else if o.has("UWSGI_ASYNCIO") {
			p = append(p, "asyncio_python3")
		}
		return p, nil
	case procfile.KindJWSGI:
		return []string{"jvm", "jwsgi"}, nil
	case procfile.KindRWSGI:
		return []string{"rack", "rbrequire"}, nil
	case procfile.KindPHP:
		return []string{"php"}, nil
	}
	return nil, fmt.Errorf("process kind %q is not run by uWSGI (only wsgi, jwsgi, rwsgi and php are)", kind)
}

// Settings returns the vassal's settings in file order.
func Settings(o Options) ([]Setting, error) {
	if !procfile.IsUWSGI(o.Kind) {
		return nil, fmt.Errorf("process kind %q is not run by uWSGI (only wsgi, jwsgi, rwsgi and php are)", o.Kind)
	}
	if o.App == "" || o.AppDir == "" || strings.TrimSpace(o.Command) == "" {
		return nil, fmt.Errorf("vassal for %q: app, app directory and command are required", o.Kind)
	}
	maxReq, err := o.positive("UWSGI_MAX_REQUESTS", DefaultMaxRequests, 1)
	if err != nil {
		return nil, err
	}
	listen, err := o.positive("UWSGI_LISTEN", DefaultListen, 1)
	if err != nil {
		return nil, err
	}
	procs, err := o.positive("UWSGI_PROCESSES", DefaultProcesses, 1)
	if err != nil {
		return nil, err
	}
	s := []Setting{
		{"chdir", o.AppDir},
		{"master", "true"},
		{"project", o.App},
		{"max-requests", maxReq},
		{"listen", listen},
		{"processes", procs},
		{"procname-prefix", o.App + ":" + o.Kind + ":"},
		{"enable-threads", boolean(o.get("UWSGI_ENABLE_THREADS", DefaultEnableThreads))},
		{"log-x-forwarded-for", boolean(o.get("UWSGI_LOG_X_FORWARDED_FOR", DefaultLogXForwardedFor))},
		{"die-on-term", "true"},
	}
	if procfile.IsWSGIFamily(o.Kind) {
		s = append(s, Setting{"need-app", "true"})
	}
	if o.VirtualEnv != "" && isVirtualEnv(o.VirtualEnv) {
		s = append(s, Setting{"virtualenv", o.VirtualEnv})
	}
	if o.has("UWSGI_IDLE") {
		idle, err := o.positive("UWSGI_IDLE", "", 1)
		if err != nil {
			return nil, err
		}
		s = append(s, Setting{"idle", idle}, Setting{"cheap", "true"})
	}
	plugins, err := Plugins(o.Kind, o.Env)
	if err != nil {
		return nil, err
	}
	bind := o.get("BIND_ADDRESS", "127.0.0.1")
	if strings.ContainsAny(bind, "\n\r$%@") || bind == "" {
		return nil, fmt.Errorf("BIND_ADDRESS=%q is not an address", bind)
	}
	if strings.Contains(bind, ":") && !strings.HasPrefix(bind, "[") {
		bind = "[" + bind + "]" // IPv6
	}
	command := strings.TrimSpace(o.Command)
	switch o.Kind {
	case procfile.KindWSGI, procfile.KindJWSGI, procfile.KindRWSGI:
		threads, err := o.positive("UWSGI_THREADS", DefaultThreads, 1)
		if err != nil {
			return nil, err
		}
		s = append(s, Setting{"module", command}, Setting{"threads", threads})
		for _, p := range plugins {
			s = append(s, Setting{"plugin", p})
		}
		switch {
		case o.Kind != procfile.KindWSGI:
		case o.has("UWSGI_GEVENT"):
			n, err := o.positive("UWSGI_GEVENT", "", 1)
			if err != nil {
				return nil, err
			}
			s = append(s, Setting{"gevent", n})
		case o.has("UWSGI_ASYNCIO"):
			n, err := o.positive("UWSGI_ASYNCIO", "", 1)
			if err != nil {
				return nil, err
			}
			s = append(s, Setting{"async", n})
		}
		s = append(s, Setting{"http-socket", bind + ":$(PORT)"})
	case procfile.KindPHP:
		docroot := filepath.Join(o.AppDir, strings.Trim(command, "/"))
		s = append(s,
			Setting{"plugin", "0:php"},
			Setting{"http-socket", bind + ":$(PORT)"},
			Setting{"check-static", docroot},
			Setting{"static-skip-ext", ".php"},
			Setting{"static-skip-ext", ".inc"},
			Setting{"static-index", "index.html"},
			Setting{"php-docroot", docroot},
			Setting{"php-allowed-ext", ".php"},
			Setting{"php-index", "index.php"},
		)
	}
	if inc := o.get("UWSGI_INCLUDE_FILE", ""); inc != "" {
		extra, err := includeFile(o.AppDir, inc)
		if err != nil {
			return nil, err
		}
		s = append(s, extra...)
	}
	if o.Env != nil {
		for _, k := range o.Env.Keys() {
			v, _ := o.Env.Get(k)
			if k == "PORT" || k == "PROC_TYPE" || !iniSafe(v) {
				continue
			}
			s = append(s, Setting{"env", k + "=" + v})
		}
	}
	s = append(s, Setting{"env", "PROC_TYPE=" + o.Kind})
	for _, st := range s {
		if strings.ContainsAny(st.Key+st.Value, "\n\r") {
			return nil, fmt.Errorf("vassal setting %q: newlines are not allowed", st.Key)
		}
	}
	return s, nil
}

// iniSafe reports whether uWSGI reads v back unchanged from an ini value.
func iniSafe(v string) bool {
	return !strings.ContainsAny(v, "\n\r%\x00") && !strings.Contains(v, "$(") && !strings.Contains(v, "@(")
}

// isVirtualEnv reports whether dir holds a Python virtualenv.
func isVirtualEnv(dir string) bool {
	for _, f := range []string{"pyvenv.cfg", "bin/activate", "bin/activate_this.py"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return true
		}
	}
	return false
}

// includeFile reads UWSGI_INCLUDE_FILE (KEY=VALUE lines, relative to the
// app directory) as extra settings, as piku did.
func includeFile(appDir, name string) ([]Setting, error) {
	if !filepath.IsLocal(name) {
		return nil, fmt.Errorf("UWSGI_INCLUDE_FILE=%q must be a path inside the app", name)
	}
	path := filepath.Join(appDir, name)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading UWSGI_INCLUDE_FILE: %w", err)
	}
	defer f.Close()
	// Keys like "static-map" are not variable names, so the file is read
	// as piku's parse_settings did: split at the first '='.
	var out []Setting
	data, err := readSmall(f)
	if err != nil {
		return nil, fmt.Errorf("reading UWSGI_INCLUDE_FILE %s: %w", path, err)
	}
	for i, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' || line == "[uwsgi]" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, &procfile.Error{File: path, Line: i + 1, Msg: "expected key = value"}
		}
		out = append(out, Setting{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	return out, nil
}

func readSmall(f *os.File) (string, error) {
	var b bytes.Buffer
	if _, err := b.ReadFrom(f); err != nil {
		return "", err
	}
	return b.String(), nil
}

// Vassal renders the vassal .ini for o.
func Vassal(o Options) ([]byte, error) {
	s, err := Settings(o)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("[uwsgi]\n")
	for _, st := range s {
		fmt.Fprintf(&b, "%s = %s\n", st.Key, st.Value)
	}
	return b.Bytes(), nil
}

// InstanceEnv is the variable the supervisor sets to each instance's
// ordinal (1, 2, ...).
const InstanceEnv = "PIKU_INSTANCE"

// InstanceCommand runs the vassal of whichever instance starts it: the
// supervisor sets InstanceEnv, so instance N runs dir/APP_KIND.N.ini, the
// file piku named for it.
func InstanceCommand(dir, app, kind string) string {
	prefix := filepath.Join(dir, app+"_"+kind+".")
	return "exec uwsgi --ini " + shell.Quote(prefix) + `"$` + InstanceEnv + `"` + shell.Quote(".ini")
}
