package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/isolation"
	"github.com/piku/piku/internal/metrics"
)

func (c *cli) topCommand() *cobra.Command {
	var (
		once, asJSON bool
		interval     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "top [APP]",
		Short: "Show every app live: requests/s, latency, errors, instances, restarts, memory",
		Long: `Show every app, refreshed every interval (1s): requests per second, p50 and
p95 latency, the share of 5xx answers, instances up of total, restarts in
the last hour and memory. Up and down arrows select an app and show its
instances; q quits. With APP, only that app and its instances are shown.

--once prints one snapshot (rates over one interval) and exits; --json
prints it as JSON, with the exact request counts since the daemon
started.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, err := c.root()
			if err != nil {
				return err
			}
			filter := ""
			if len(args) == 1 {
				if _, filter, err = c.appArg(args[0]); err != nil {
					return err
				}
			}
			if interval <= 0 {
				return fmt.Errorf("interval %s: want a positive duration", interval)
			}
			t := &topView{client: c.client(root), filter: filter, interval: interval}
			if once || asJSON {
				return t.once(c.stdout, asJSON)
			}
			return t.live(c.stdin, c.stdout)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&once, "once", false, "print one snapshot and exit")
	f.BoolVar(&asJSON, "json", false, "print one snapshot as JSON and exit")
	f.DurationVar(&interval, "interval", time.Second, "refresh period, and the interval rates are measured over")
	return cmd
}

// topView samples the daemon's metrics and renders them.
type topView struct {
	client   *control.Client
	filter   string // show only this app, with its instances
	interval time.Duration
	sel      string // the app whose instances are shown
}

func (t *topView) sample(ctx context.Context) (metrics.Sample, error) {
	b, err := t.client.Metrics(ctx)
	if err != nil {
		return metrics.Sample{}, err
	}
	return metrics.ParseSample(bytes.NewReader(b), time.Now())
}

// snapshot samples twice, one interval apart.
func (t *topView) snapshot(ctx context.Context) ([]metrics.AppTop, error) {
	prev, err := t.sample(ctx)
	if err != nil {
		return nil, err
	}
	time.Sleep(t.interval)
	cur, err := t.sample(ctx)
	if err != nil {
		return nil, err
	}
	return t.filtered(metrics.Top(prev, cur)), nil
}

func (t *topView) filtered(apps []metrics.AppTop) []metrics.AppTop {
	if t.filter == "" {
		return apps
	}
	for _, a := range apps {
		if a.App == t.filter {
			return []metrics.AppTop{a}
		}
	}
	return []metrics.AppTop{}
}

func (t *topView) once(w io.Writer, asJSON bool) error {
	apps, err := t.snapshot(context.Background())
	if err != nil {
		return err
	}
	if apps == nil {
		apps = []metrics.AppTop{}
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(apps)
	}
	t.sel = t.filter
	_, err = io.WriteString(w, t.render(apps, time.Now(), false))
	return err
}

// live redraws the screen every interval until q, Ctrl-C or an error.
// Keys are read only when stdin is a terminal.
func (t *topView) live(stdin io.Reader, stdout io.Writer) error {
	in, _ := stdin.(*os.File)
	var keys *keyReader
	if in != nil && isTerminal(in) {
		restore, err := rawMode(in)
		if err != nil {
			return err
		}
		defer restore()
		keys = &keyReader{f: in}
		fmt.Fprint(stdout, "\x1b[?25l")       // hide the cursor
		defer fmt.Fprint(stdout, "\x1b[?25h") // and show it again
	}
	ctx := context.Background()
	t.sel = t.filter
	cur, err := t.sample(ctx)
	if err != nil {
		return err
	}
	apps := t.filtered(metrics.Top(metrics.Sample{}, cur))
	draw := func() error {
		frame := t.render(apps, cur.At, keys != nil && t.filter == "")
		if keys != nil {
			frame = "\x1b[H\x1b[2J" + strings.ReplaceAll(frame, "\n", "\r\n")
		}
		_, err := io.WriteString(stdout, frame)
		return err
	}
	for {
		if err := draw(); err != nil {
			return err
		}
		next := time.Now().Add(t.interval)
		if keys == nil {
			time.Sleep(t.interval)
		}
		for keys != nil {
			k, err := keys.next(time.Until(next))
			if err != nil {
				return err
			}
			if k == keyNone {
				break
			}
			if k == keyQuit {
				return nil
			}
			if t.filter == "" {
				t.move(apps, k)
				if err := draw(); err != nil {
					return err
				}
			}
		}
		prev := cur
		if cur, err = t.sample(ctx); err != nil {
			return err
		}
		apps = t.filtered(metrics.Top(prev, cur))
	}
}

// move changes the selected app.
func (t *topView) move(apps []metrics.AppTop, k key) {
	if len(apps) == 0 {
		return
	}
	i := -1
	for j, a := range apps {
		if a.App == t.sel {
			i = j
		}
	}
	switch k {
	case keyUp:
		if i <= 0 {
			i = len(apps)
		}
		i--
	case keyDown:
		i = (i + 1) % len(apps)
	case keyEscape:
		t.sel = ""
		return
	}
	t.sel = apps[i].App
}

// render draws the app table and the selected app's instances.
func (t *topView) render(apps []metrics.AppTop, now time.Time, help bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "piku top  %s  %d app(s)", now.Format("15:04:05"), len(apps))
	if help {
		b.WriteString("  (up/down: select an app, q: quit)")
	}
	b.WriteString("\n")
	if len(apps) > 0 && apps[0].Isolation != "" {
		mode := apps[0].Isolation
		if mode == "best effort" {
			mode += ": limits not enforced"
		}
		b.WriteString("isolation: " + mode + "\n")
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  APP\tREQ/S\tP50\tP95\tERR%\tUP\tRESTARTS/1H\tMEM\tMEM LIMIT\tPROCS\tCOLD START")
	var selected *metrics.AppTop
	for i, a := range apps {
		mark := " "
		if a.App == t.sel {
			mark, selected = ">", &apps[i]
		}
		memLimit, procs := "-", "-"
		if l := a.Limits; l != nil && a.Isolation != "best effort" {
			if l.MemoryMax > 0 {
				memLimit = isolation.FormatSize(l.MemoryMax)
			}
			if l.Pids > 0 {
				procs = strconv.FormatInt(l.Pids, 10)
				if l.PidsMax > 0 {
					procs += "/" + strconv.FormatInt(l.PidsMax, 10)
				}
			}
		}
		fmt.Fprintf(tw, "%s %s\t%.1f\t%s\t%s\t%.1f\t%d/%d\t%d\t%s\t%s\t%s\t%s\n", mark, a.App, a.RequestsPerSec,
			ms(a.P50Ms, a.LatencySince), ms(a.P95Ms, a.LatencySince), a.ErrorRate*100,
			a.InstancesUp, a.InstancesTotal, a.RestartsLastHour, rss(a.MemoryBytes), memLimit, procs, coldStart(a))
	}
	tw.Flush()
	if selected != nil {
		fmt.Fprintf(&b, "\n%s: %d requests since the daemon started (%d errors)", selected.App, selected.Requests, selected.Errors)
		if selected.Wakes > 0 {
			fmt.Fprintf(&b, "; woke %d times from its sleep, the last in %s", selected.Wakes, coldStart(*selected))
		}
		b.WriteString("\n")
		if l := selected.Limits; l != nil && selected.Isolation != "" {
			for _, line := range limitsText(control.Limits{Mode: selected.Isolation, Asked: "its ENV's limits",
				MemoryBytes: l.MemoryBytes, MemoryMax: l.MemoryMax, Pids: l.Pids, PidsMax: l.PidsMax,
				CPUSeconds: l.CPUSeconds, CPUWeight: l.CPUWeight, CPUMax: l.CPUMax, OpenFiles: l.OpenFiles,
				CoreMax: l.CoreMax, Nice: kindsNice(selected.Instances), OOMKills: l.OOMKills}) {
				b.WriteString(line + "\n")
			}
		}
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PROCESS\tSTATE\tUPTIME\tRESTARTS\tRESTARTS/1H\tLAST EXIT\tMEM\tCPU\tNICE")
		for _, in := range selected.Instances {
			exit := "-"
			if in.LastExitCode != nil {
				exit = strconv.Itoa(*in.LastExitCode)
			}
			up := "-"
			if in.UptimeSeconds > 0 {
				up = short(time.Duration(in.UptimeSeconds) * time.Second)
			}
			nice := "-"
			if in.Nice != nil {
				nice = strconv.Itoa(*in.Nice)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%.2fs\t%s\n", in.Process, orDash(in.State), up,
				in.Restarts, in.RestartsLastHour, exit, rss(in.MemoryBytes), in.CPUSeconds, nice)
		}
		tw.Flush()
	}
	return b.String()
}

// kindsNice is the nice value of each kind's first running instance in
// insts (named KIND.N), as ps shows them.
func kindsNice(insts []metrics.InstanceTop) map[string]int {
	var out map[string]int
	for _, in := range insts {
		kind, _, _ := strings.Cut(in.Process, ".")
		if _, seen := out[kind]; seen || in.Nice == nil {
			continue
		}
		if out == nil {
			out = map[string]int{}
		}
		out[kind] = *in.Nice
	}
	return out
}

// coldStart renders how long the app's last wake from its sleep took;
// "-" when it never woke.
func coldStart(a metrics.AppTop) string {
	if a.Wakes == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3fs", a.LastColdStartMs/1000)
}

// ms renders a latency in milliseconds; "-" without requests.
func ms(v float64, since string) string {
	if since == "" {
		return "-"
	}
	if v < 10 {
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.0fms", v)
}
