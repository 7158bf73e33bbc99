// Command supervise measures piku's supervisor through the real binary: it
// starts `piku daemon` on a throwaway PIKU_ROOT, rolls out an app with 100
// worker processes and reports the numbers docs/PERFORMANCE.md quotes:
//
//   - the time from the deploy request until all 100 processes are
//     spawned, and until they count as running;
//   - the daemon's RSS and how many processes it has besides the apps';
//   - the respawn latency after kill -9 of one process (median, max);
//   - the daemon's CPU use while another app crash-loops.
//
// Usage: go run ./internal/bench/supervise -piku ./bin/piku [-n 100] [-loop 20s]
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/layout"
)

func main() {
	bin := flag.String("piku", "./bin/piku", "the piku binary")
	n := flag.Int("n", 100, "worker processes to supervise")
	kills := flag.Int("kills", 10, "kill -9 samples for the respawn latency")
	loop := flag.Duration("loop", 20*time.Second, "how long to measure CPU during a crash loop")
	flag.Parse()
	if err := run(*bin, *n, *kills, *loop); err != nil {
		log.Fatal(err)
	}
}

func run(bin string, n, kills int, loop time.Duration) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "piku-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	root, err := layout.New(filepath.Join(tmp, "root"))
	if err != nil {
		return err
	}
	if err := root.Init(); err != nil {
		return err
	}
	write := func(path, text string) error {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		return os.WriteFile(path, []byte(text), 0o644)
	}
	if err := write(root.AppProcfile("many"), "worker: sleep 100000\n"); err != nil {
		return err
	}
	if err := write(root.ScalingFile("many"), fmt.Sprintf("worker:%d\n", n)); err != nil {
		return err
	}
	if err := write(root.AppProcfile("loop"), "crash: sleep 0.05; exit 1\n"); err != nil {
		return err
	}
	// Both apps start stopped, so each measurement starts from a known point.
	for _, app := range []string{"many", "loop"} {
		if err := write(root.StoppedFile(app), ""); err != nil {
			return err
		}
	}

	cmd := exec.Command(bin, "daemon")
	cmd.Env = append(os.Environ(), "PIKU_ROOT="+root.Dir(), "PIKU_HTTP=", "PIKU_HTTPS=", "PIKU_ACME=false",
		"PIKU_PORTS=29000-29999", "PIKU_LOG_LEVEL=warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	c := control.NewClient(root.Socket())
	ctx := context.Background()
	if err := waitFor(10*time.Second, func() bool { _, err := c.Ping(ctx); return err == nil }); err != nil {
		return fmt.Errorf("daemon did not answer: %w", err)
	}
	pid := cmd.Process.Pid
	rss0 := rss(pid)

	// 1. Start n processes.
	// Status shows a new generation only once it is live, so the spawn
	// time is read off /proc: the daemon's children.
	t0 := time.Now()
	deployed := make(chan error, 1)
	go func() { deployed <- c.Deploy(ctx, "many", control.DeployRequest{}, io.Discard) }()
	if err := waitFor(30*time.Second, func() bool { return childCount(pid) >= n }); err != nil {
		return fmt.Errorf("%d processes did not start: %w", n, err)
	}
	spawnAll := time.Since(t0)
	if err := <-deployed; err != nil {
		return err
	}
	if err := waitFor(30*time.Second, func() bool { return running(c, "many") == n }); err != nil {
		return fmt.Errorf("%d processes did not start: %w", n, err)
	}
	startAll := time.Since(t0)
	time.Sleep(time.Second) // let the log writers settle before reading RSS
	rssN := rss(pid)
	children := childCount(pid)

	// 2. Respawn latency after kill -9.
	var lat []time.Duration
	for i := 0; i < kills; i++ {
		st, err := c.Status(ctx, "many")
		if err != nil {
			return err
		}
		in := st.Instances[i%len(st.Instances)]
		t := time.Now()
		if err := syscall.Kill(in.PID, syscall.SIGKILL); err != nil {
			return err
		}
		err = waitFor(10*time.Second, func() bool {
			st, err := c.Status(ctx, "many")
			if err != nil {
				return false
			}
			for _, x := range st.Instances {
				if x.Kind == in.Kind && x.N == in.N {
					return x.PID != 0 && x.PID != in.PID
				}
			}
			return false
		})
		if err != nil {
			return fmt.Errorf("%s.%d was not respawned: %w", in.Kind, in.N, err)
		}
		lat = append(lat, time.Since(t))
		time.Sleep(200 * time.Millisecond)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })

	// 3. Daemon CPU while an app crash-loops next to the n processes.
	if err := c.Deploy(ctx, "loop", control.DeployRequest{}, io.Discard); err != nil {
		// A process that exits at once may fail the rollout; it is
		// supervised (and crash-looping) all the same.
		fmt.Fprintln(os.Stderr, "loop app rollout:", err)
	}
	time.Sleep(2 * time.Second)
	cpu0, wall0 := cpuTicks(pid), time.Now()
	time.Sleep(loop)
	cpu := float64(cpuTicks(pid)-cpu0) / 100 / time.Since(wall0).Seconds() * 100 // USER_HZ is 100 on Linux
	st, _ := c.Status(ctx, "loop")
	state, restarts := "", 0
	if len(st.Instances) > 0 {
		state, restarts = st.Instances[0].State, st.Instances[0].Restarts
	}

	fmt.Printf("| measure | value |\n|---|---|\n")
	fmt.Printf("| start %d processes: deploy request to all spawned | %s |\n", n, spawnAll.Round(time.Millisecond))
	fmt.Printf("| start %d processes: deploy request to all running (a worker counts as running after 1 s up) | %s |\n", n, startAll.Round(time.Millisecond))
	fmt.Printf("| daemon RSS, idle / supervising %d | %.1f MiB / %.1f MiB |\n", n, float64(rss0)/(1<<20), float64(rssN)/(1<<20))
	fmt.Printf("| daemon's child processes for %d supervised | %d |\n", n, children)
	fmt.Printf("| respawn after kill -9 (new process started), median / max of %d | %s / %s |\n", len(lat), lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	fmt.Printf("| daemon CPU during a crash loop (%s, state %s, %d restarts) | %.2f %% of a core |\n", loop, state, restarts, cpu)
	return nil
}

func running(c *control.Client, app string) int {
	st, err := c.Status(context.Background(), app)
	if err != nil {
		return 0
	}
	k := 0
	for _, in := range st.Instances {
		if in.State == "running" && in.PID != 0 {
			k++
		}
	}
	return k
}

func waitFor(d time.Duration, cond func() bool) error {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		if cond() {
			return nil
		}
	}
	return fmt.Errorf("timed out after %s", d)
}

// rss is VmRSS of pid in bytes.
func rss(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuTicks is utime+stime of pid in clock ticks.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}

// childCount counts the processes whose parent is pid.
func childCount(pid int) int {
	ents, _ := os.ReadDir("/proc")
	k := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if f[1] == strconv.Itoa(pid) {
			k++
		}
	}
	return k
}
