package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// logFileName matches the live log files of an app: KIND.N.log for
// processes, cronNAME.log and access.log. Rotated backups (KIND.N-TIME.log)
// are left out.
var logFileName = regexp.MustCompile(`^([A-Za-z0-9_-]+)(\.[0-9]+)?\.log$`)

func (c *cli) logsCommand() *cobra.Command {
	var (
		lines  int
		follow bool
	)
	cmd := &cobra.Command{
		Use:   "logs APP [KIND]",
		Short: "Show the app's logs, merged by time and prefixed with the process (-f follows them)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if lines < 0 {
				return fmt.Errorf("--lines %d: must be 0 or more", lines)
			}
			root, app, err := c.deployedApp(args[0])
			if err != nil {
				return err
			}
			kind := ""
			if len(args) == 2 {
				kind = args[1]
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
			return tailLogs(ctx, c.stdout, root.Logs(app), kind, files, lines, follow)
		},
	}
	cmd.Flags().IntVarP(&lines, "lines", "n", 50, "how many of the last lines to show")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines as they are written (also across rotation)")
	return cmd
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

// readTail returns the last n lines of path, reading from its end.
func readTail(path string, n int) ([]logLine, int64, error) {
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

func printLines(w io.Writer, lines []logLine, width int) {
	for _, l := range lines {
		fmt.Fprintf(w, "%-*s | %s\n", width, l.source, l.text)
	}
}

func tailLogs(ctx context.Context, w io.Writer, dir, kind string, files []string, n int, follow bool) error {
	var merged []logLine
	offsets := map[string]int64{}
	inodes := map[string]uint64{}
	width := 5
	for _, f := range files {
		lines, size, err := readTail(f, n)
		if err != nil {
			return err
		}
		merged = append(merged, lines...)
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
	printLines(w, merged, width)
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
		printLines(w, fresh, width)
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
