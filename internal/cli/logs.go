package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/appconfig"
	"github.com/piku/piku/internal/layout"
)

// logFileName matches the live log files of an app: KIND.N.log for
// processes, cronNAME.log and access.log. Rotated backups (KIND.N-TIME.log)
// are left out.
var logFileName = regexp.MustCompile(`^([A-Za-z0-9_-]+)(\.[0-9]+)?\.log$`)

func (c *cli) logsCommand() *cobra.Command {
	var (
		lines  int
		follow bool
		asJSON bool
		since  string
	)
	cmd := &cobra.Command{
		Use:   "logs APP [KIND|KIND.N]",
		Short: "Show the app's logs, merged by time and prefixed with the process (-f follows them)",
		Long: `Show the app's logs, merged by time and prefixed with the process: every
process, one kind (web), one instance (web.2), a cron entry (cron1) or the
proxy's access log (access). -f keeps printing new lines, across rotation.
--since keeps the lines written in the last DURATION (10m, 2h) or since a
time (2026-01-02T15:04:05Z); -n then bounds them only when given. --json
prints one JSON object a line (docs/JSON.md).`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if lines < 0 {
				return fmt.Errorf("--lines %d: must be 0 or more", lines)
			}
			var from time.Time
			if since != "" {
				var err error
				if from, err = parseSince(since, time.Now()); err != nil {
					return err
				}
				if !cmd.Flags().Changed("lines") {
					lines = math.MaxInt
				}
			}
			root, app, err := c.deployedApp(args[0])
			if err != nil {
				return err
			}
			kind := ""
			if len(args) == 2 {
				kind = args[1]
				if err := checkLogSource(root, app, kind); err != nil {
					return err
				}
			}
			files, err := logFiles(root.Logs(app), kind)
			if err != nil {
				return err
			}
			if len(files) == 0 && !follow {
				return fmt.Errorf("app %q has no logs%s yet", app, forKind(kind))
			}
			ctx, cancel := signalContext()
			defer cancel()
			out := linePrinter(c.stdout, asJSON)
			return tailLogs(ctx, out, root.Logs(app), kind, files, lines, from, follow)
		},
	}
	cmd.Flags().IntVarP(&lines, "lines", "n", 50, "how many of the last lines to show")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines as they are written (also across rotation)")
	cmd.Flags().StringVar(&since, "since", "", "only lines written in the last DURATION (10m, 2h) or since an RFC 3339 time")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object a line: time, source, line")
	return cmd
}

// parseSince reads --since: a duration back from now, or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration like 10m or 2h, or a time like 2026-01-02T15:04:05Z", s)
}

// checkLogSource refuses a KIND or KIND.N that names nothing of app's: a
// Procfile entry, one of its instances, or the proxy's access log.
func checkLogSource(root layout.Root, app, source string) error {
	a, err := appconfig.Load(root, app)
	if err != nil {
		return nil // the logs of an app with a broken Procfile are still shown
	}
	kind, n, hasN := strings.Cut(source, ".")
	if hasN {
		if i, err := strconv.Atoi(n); err != nil || i < 1 || strconv.Itoa(i) != n {
			return fmt.Errorf("%q: want KIND or KIND.N, with N an instance number from 1", source)
		}
	}
	names := []string{"access"}
	for _, e := range a.Procfile.Entries {
		names = append(names, e.Kind)
	}
	if slices.Contains(names, kind) {
		return nil
	}
	slices.Sort(names)
	return fmt.Errorf("app %q has no process kind %q in its Procfile, and no log by that name (it has: %s)", app, kind, strings.Join(names, ", "))
}

func forKind(kind string) string {
	if kind == "" {
		return ""
	}
	return " for " + kind
}

// logFiles lists the live log files in dir, for kind when it is not empty.
func logFiles(dir, kind string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		m := logFileName.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			continue
		}
		if kind != "" && m[1] != kind && strings.TrimSuffix(e.Name(), ".log") != kind {
			continue
		}
		out = append(out, filepath.Join(dir, e.Name()))
	}
	sort.Strings(out)
	return out, nil
}

// logLine is one line of a log file with the time it was written.
type logLine struct {
	t      time.Time
	source string
	text   string
}

// parseStamp reads the UTC timestamp the supervisor puts before each line.
func parseStamp(s string) (time.Time, bool) {
	sp := strings.IndexByte(s, ' ')
	if sp < 20 || sp > 35 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s[:sp])
	return t, err == nil
}

// readTail returns the last n lines of path, reading from its end; with
// whole, it reads the whole file (for --since, where n may be unbounded).
func readTail(path string, n int, whole bool) ([]logLine, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := fi.Size()
	// Read back in chunks until n lines are found or the start is reached.
	const chunk = 64 * 1024
	start := size
	var buf []byte
	if whole {
		buf = make([]byte, size)
		if _, err := f.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, err
		}
		start = 0
	}
	for start > 0 && strings.Count(string(buf), "\n") <= n {
		step := int64(chunk)
		if start < step {
			step = start
		}
		start -= step
		b := make([]byte, step)
		if _, err := f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, err
		}
		buf = append(b, buf...)
	}
	text := strings.TrimSuffix(string(buf), "\n")
	all := strings.Split(text, "\n")
	if start > 0 && len(all) > 0 {
		all = all[1:] // the first piece may be a partial line
	}
	if len(all) > n {
		all = all[len(all)-n:]
	}
	return stamp(sourceName(path), all, time.Time{}), size, nil
}

// stamp turns raw lines into logLines; a line without a timestamp takes
// the previous line's, so merging keeps a file's lines together.
func stamp(source string, raw []string, last time.Time) []logLine {
	out := make([]logLine, 0, len(raw))
	for _, r := range raw {
		if r == "" {
			continue
		}
		t, ok := parseStamp(r)
		if ok {
			last = t
		}
		out = append(out, logLine{t: last, source: source, text: r})
	}
	return out
}

func sourceName(path string) string { return strings.TrimSuffix(filepath.Base(path), ".log") }

// logEntry is one line of `piku logs --json` (see docs/JSON.md).
type logEntry struct {
	Time   *time.Time `json:"time,omitempty"` // when it was written; absent for a line without a time stamp
	Source string     `json:"source"`         // web.1, cron1, access
	Line   string     `json:"line"`           // the text, without the time stamp
}

// linePrinter returns how tailLogs prints a batch of lines: as a table
// with the sources padded to width, or as NDJSON.
func linePrinter(w io.Writer, asJSON bool) func(lines []logLine, width int) {
	if asJSON {
		enc := json.NewEncoder(w)
		return func(lines []logLine, _ int) {
			for _, l := range lines {
				e := logEntry{Source: l.source, Line: l.text}
				if t, ok := parseStamp(l.text); ok {
					e.Time = &t
					e.Line = l.text[strings.IndexByte(l.text, ' ')+1:]
				}
				_ = enc.Encode(e)
			}
		}
	}
	return func(lines []logLine, width int) {
		for _, l := range lines {
			fmt.Fprintf(w, "%-*s | %s\n", width, l.source, l.text)
		}
	}
}

// tailLogs prints the last n lines of files merged by time (only those
// written at or after from, when it is set), then, with follow, the lines
// written to dir's files of kind from now on.
func tailLogs(ctx context.Context, print func([]logLine, int), dir, kind string, files []string, n int, from time.Time, follow bool) error {
	var merged []logLine
	offsets := map[string]int64{}
	inodes := map[string]uint64{}
	width := 5
	for _, f := range files {
		lines, size, err := readTail(f, n, !from.IsZero())
		if err != nil {
			return err
		}
		for _, l := range lines {
			if from.IsZero() || !l.t.Before(from) {
				merged = append(merged, l)
			}
		}
		offsets[f] = size
		inodes[f] = inode(f)
		if l := len(sourceName(f)); l > width {
			width = l
		}
	}
	sort.SliceStable(merged, func(i, j int) bool { return merged[i].t.Before(merged[j].t) })
	if len(merged) > n {
		merged = merged[len(merged)-n:]
	}
	print(merged, width)
	if !follow {
		return nil
	}
	// Follow by polling, as tail -F does: new files appear when processes
	// are scaled up, and rotation replaces a file with a new one.
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		current, err := logFiles(dir, kind)
		if err != nil {
			return err
		}
		var fresh []logLine
		for _, f := range current {
			if ino := inode(f); ino != inodes[f] {
				inodes[f] = ino
				offsets[f] = 0 // rotated or new: read the new file from its start
			}
			lines, off, err := readFrom(f, offsets[f])
			if err != nil {
				continue
			}
			offsets[f] = off
			fresh = append(fresh, lines...)
		}
		sort.SliceStable(fresh, func(i, j int) bool { return fresh[i].t.Before(fresh[j].t) })
		print(fresh, width)
	}
}

// readFrom reads the complete lines of path after offset.
func readFrom(path string, offset int64) ([]logLine, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, offset, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, offset, err
	}
	if fi.Size() < offset {
		offset = 0 // truncated
	}
	if fi.Size() == offset {
		return nil, offset, nil
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, offset, err
	}
	var raw []string
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break // a partial last line is read again next time
		}
		offset += int64(len(line))
		raw = append(raw, strings.TrimSuffix(line, "\n"))
	}
	return stamp(sourceName(path), raw, time.Now().UTC()), offset, nil
}
