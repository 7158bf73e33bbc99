package procfile

import (
	"fmt"
	"io"
	"strings"
)

// Process kinds with a meaning of their own. Any other kind that does not
// start with "cron" is a worker: a long-running process without a port.
const (
	// KindWeb is an HTTP server the app runs itself; it gets a PORT.
	KindWeb = "web"
	// KindWSGI is a Python WSGI module run by uWSGI ("app:application").
	KindWSGI = "wsgi"
	// KindJWSGI is a Java JWSGI class run by uWSGI's jvm plugin.
	KindJWSGI = "jwsgi"
	// KindRWSGI is a Ruby Rack app run by uWSGI's rack plugin.
	KindRWSGI = "rwsgi"
	// KindPHP is a PHP document root (relative to the app) served by
	// uWSGI's php plugin. Unlike the wsgi family it does not disable web.
	KindPHP = "php"
	// KindStatic is a directory (relative to the app) served as static
	// files by the proxy; it runs no process.
	KindStatic = "static"
	// KindRelease is a command run once per deploy, after the build and
	// before the new processes start; a failure stops the deploy.
	KindRelease = "release"
	// KindPreflight is a command run once per deploy before the build.
	KindPreflight = "preflight"
	// CronPrefix starts the kind of every cron entry ("cron1",
	// "cron-nightly"), as in piku.
	CronPrefix = "cron"
)

// Procfile is a parsed Procfile.
type Procfile struct {
	// Entries are the entries in file order, one per kind: a repeated
	// kind keeps the position of its first line and the command of its
	// last. A web entry disabled by a wsgi-family entry is not here.
	Entries []Entry
	// Warnings are problems that did not stop parsing, each starting with
	// the file and line ("Procfile line 4: ..."), for the caller to show.
	Warnings []string
}

// Entry is one "kind: command" line of a Procfile.
type Entry struct {
	// Kind is the process kind: "web", "wsgi", "worker", "cron1"...
	Kind string
	// Command is the command (for cron entries, without the schedule; for
	// wsgi the module, for static and php a directory).
	Command string
	// Line is the 1-based line the entry was read from.
	Line int
	// Schedule is set for cron entries only.
	Schedule *Schedule
}

// IsWSGIFamily reports whether kind is served by a uWSGI application plugin
// that makes a separate web entry redundant: wsgi, jwsgi and rwsgi. As in
// piku, php is run by uWSGI too but does not disable web.
func IsWSGIFamily(kind string) bool {
	return kind == KindWSGI || kind == KindJWSGI || kind == KindRWSGI
}

// IsUWSGI reports whether kind is run by uWSGI from a vassal file: the wsgi
// family and php.
func IsUWSGI(kind string) bool { return IsWSGIFamily(kind) || kind == KindPHP }

// IsCron reports whether kind is a cron entry: it starts with "cron", as in
// piku ("cron", "cron1", "cron-nightly").
func IsCron(kind string) bool { return strings.HasPrefix(kind, CronPrefix) }

// IsLongRunning reports whether kind is a process the supervisor keeps
// running: everything but release, preflight, static and cron entries.
func IsLongRunning(kind string) bool {
	switch kind {
	case KindRelease, KindPreflight, KindStatic:
		return false
	}
	return !IsCron(kind)
}

// Parse reads a Procfile. file names the input in errors and warnings.
//
// Each non-blank line that does not start with '#' is "kind: command". The
// kind is letters, digits, '_' and '-'; the command is the rest of the line,
// trimmed. Kinds starting with "cron" take a five-field schedule before the
// command ("cron1: */5 * * * * python batch.py"). A line without ':', with a
// bad kind, an empty command or a bad schedule is an *Error. (Python piku
// skipped such lines with a warning; a typo that silently drops a process is
// worse than a failed deploy.)
//
// A repeated kind is a warning and the last command wins, as in piku. A wsgi,
// jwsgi or rwsgi entry disables web, with a warning.
func Parse(r io.Reader, file string) (*Procfile, error) {
	p := &Procfile{}
	index := map[string]int{} // kind -> position in p.Entries
	err := forEachLine(r, file, func(n int, raw string) error {
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' {
			return nil
		}
		colon := strings.IndexByte(line, ':')
		if colon < 0 {
			return errorf(file, n, "missing ':' (expected \"kind: command\")")
		}
		kind := strings.TrimSpace(line[:colon])
		command := strings.TrimSpace(line[colon+1:])
		if kind == "" {
			return errorf(file, n, "missing process kind before ':'")
		}
		if !validKind(kind) {
			return errorf(file, n, "invalid process kind %q: use letters, digits, '_' and '-'", kind)
		}
		if command == "" {
			return errorf(file, n, "empty command for %q", kind)
		}
		e := Entry{Kind: kind, Command: command, Line: n}
		if IsCron(kind) {
			sched, cmd, err := splitCron(command)
			if err != nil {
				return errorf(file, n, "%s: %v", kind, err)
			}
			e.Schedule, e.Command = sched, cmd
		}
		if i, ok := index[kind]; ok {
			p.Warnings = append(p.Warnings, fmt.Sprintf("%s: %q repeats line %d; the last one wins",
				where(file, n), kind, p.Entries[i].Line))
			e.Line = n
			p.Entries[i] = e
			return nil
		}
		if len(p.Entries) == MaxKinds {
			return errorf(file, n, "more than %d process kinds", MaxKinds)
		}
		index[kind] = len(p.Entries)
		p.Entries = append(p.Entries, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if wi, ok := index[KindWeb]; ok {
		for _, e := range p.Entries {
			if IsWSGIFamily(e.Kind) {
				web := p.Entries[wi]
				p.Warnings = append(p.Warnings, fmt.Sprintf("%s: %q is disabled because %q (line %d) serves the app",
					where(file, web.Line), KindWeb, e.Kind, e.Line))
				p.Entries = append(p.Entries[:wi:wi], p.Entries[wi+1:]...)
				break
			}
		}
	}
	return p, nil
}

// splitCron splits "m h dom mon dow command" into its schedule and command.
func splitCron(s string) (*Schedule, string, error) {
	fields := strings.Fields(s)
	if len(fields) < 6 {
		return nil, "", fmt.Errorf("expected a five-field schedule and a command (\"*/5 * * * * command\"), got %q", s)
	}
	sched, err := ParseSchedule(strings.Join(fields[:5], " "))
	if err != nil {
		return nil, "", err
	}
	// Keep the command's own spacing: cut the five schedule fields off the
	// front of the trimmed text.
	rest := s
	for range 5 {
		rest = strings.TrimLeft(rest, " \t")
		i := strings.IndexAny(rest, " \t")
		rest = rest[i:]
	}
	return sched, strings.TrimSpace(rest), nil
}

// Entry returns the entry of kind, if there is one.
func (p *Procfile) Entry(kind string) (Entry, bool) {
	for _, e := range p.Entries {
		if e.Kind == kind {
			return e, true
		}
	}
	return Entry{}, false
}

// Processes lists the entries the supervisor keeps running (see
// IsLongRunning), in file order.
func (p *Procfile) Processes() []Entry {
	var out []Entry
	for _, e := range p.Entries {
		if IsLongRunning(e.Kind) {
			out = append(out, e)
		}
	}
	return out
}
