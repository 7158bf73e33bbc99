// Command push measures how long a `git push` takes until the pushed
// version answers through piku's proxy, for a generic app (python3 -m
// http.server serving an index.html), a Go app (built into the release's
// .piku/bin) and a Python WSGI app (a virtualenv, requirements.txt, served
// by uWSGI), each for a first deploy and for a redeploy of a second
// commit. The first Python app on a server also makes the interpreter's
// virtualenv template; its first deploy is shown on a row of its own. It runs `piku daemon` on a throwaway PIKU_ROOT with
// loopback ports and pushes over an ssh stand-in that runs what sshd's
// forced command runs, then prints a markdown table.
//
//	make build && go run ./internal/bench/push -runs 3
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/layout"
)

// ports is the daemon's PIKU_PORTS (-ports).
var ports string

// pollEvery is how often the proxy is asked whether the new version answers.
const pollEvery = 5 * time.Millisecond

func main() {
	pikuBin := flag.String("piku", "./bin/piku", "piku binary (make build)")
	runs := flag.Int("runs", 3, "runs of each app and case")
	only := flag.String("apps", "", "comma-separated app kinds to run (generic, Go, Python); default all")
	flag.StringVar(&ports, "ports", "28000-28999", "PIKU_PORTS of the daemon: the range app instances listen on")
	timeout := flag.Duration("timeout", 3*time.Minute, "longest wait for one push to answer")
	flag.Parse()
	log.SetFlags(0)
	if *runs < 1 {
		log.Fatal("-runs must be at least 1")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *only != "" {
		keep := strings.Split(*only, ",")
		apps = slices.DeleteFunc(apps, func(a app) bool { return !slices.Contains(keep, a.name) })
		if len(apps) == 0 {
			log.Fatalf("-apps %q names no app kind (generic, Go, Python)", *only)
		}
	}
	if err := run(ctx, *pikuBin, *runs, *timeout); err != nil {
		stop()
		log.Fatal(err)
	}
}

// app is one kind of app the benchmark deploys.
type app struct {
	name   string // "generic", "Go"
	prefix string // app names are prefix1, prefix2, ...
	files  func(app, version string) map[string]string
}

var apps = []app{
	{name: "generic", prefix: "gen", files: genericFiles},
	{name: "Go", prefix: "go", files: goFiles},
	{name: "Python", prefix: "py", files: pythonFiles},
}

// pythonFiles is a WSGI app with a requirements.txt (stdlib only: the
// benchmark needs no package index), served by uWSGI.
func pythonFiles(name, version string) map[string]string {
	return map[string]string{
		"Procfile":         "wsgi: app:application\n",
		"ENV":              "NGINX_SERVER_NAME=" + name + ".bench\n",
		"requirements.txt": "# stdlib only\n",
		"app.py": "def application(environ, start_response):\n" +
			"    start_response('200 OK', [('Content-Type', 'text/plain')])\n" +
			"    return [b'" + version + "\\n']\n",
	}
}

func genericFiles(name, version string) map[string]string {
	return map[string]string{
		"Procfile":   "web: python3 -m http.server --bind 127.0.0.1 $PORT\n",
		"ENV":        "NGINX_SERVER_NAME=" + name + ".bench\n",
		"index.html": "<!doctype html>\n<p>" + version + "</p>\n",
	}
}

// goFiles is a module whose root package is the command: `go build -o
// RELEASE/.piku/bin/ ./...` names its binary after the module path's last
// element, NAME-server, which the Procfile runs from PATH.
func goFiles(name, version string) map[string]string {
	return map[string]string{
		"Procfile": "web: " + name + "-server\n",
		"ENV":      "NGINX_SERVER_NAME=" + name + ".bench\n",
		"go.mod":   "module bench.invalid/" + name + "-server\n\ngo 1.22\n",
		"main.go": `package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

const version = "` + version + `"

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, version)
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil))
}
`,
	}
}

// bench is one PIKU_ROOT with its daemon.
type bench struct {
	dir     string   // temp dir: root, repos, logs
	env     []string // environment of the daemon and of every push
	sshCmd  string   // the ssh stand-in
	proxy   string   // the proxy's HTTP address
	timeout time.Duration
	client  *http.Client
}

func run(ctx context.Context, pikuBin string, runs int, timeout time.Duration) error {
	pikuBin, err := filepath.Abs(pikuBin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(pikuBin); err != nil {
		return fmt.Errorf("%w (run make build first)", err)
	}
	dir, err := os.MkdirTemp("", "piku-bench-push-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	root, err := layout.New(filepath.Join(dir, "root"))
	if err != nil {
		return err
	}
	if err := root.Init(); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	b := &bench{
		dir:     dir,
		proxy:   fmt.Sprintf("127.0.0.1:%d", port),
		sshCmd:  filepath.Join(dir, "ssh"),
		timeout: timeout,
		client: &http.Client{
			Timeout:   2 * time.Second,
			Transport: &http.Transport{DisableKeepAlives: true},
		},
	}
	b.env = append(os.Environ(),
		"PIKU_ROOT="+root.Dir(),
		"PIKU_HTTP="+b.proxy,
		"PIKU_HTTPS=",
		"PIKU_ACME=false",
		"PIKU_PORTS="+ports,
	)
	// What sshd's forced command runs for piku's key, with the client's
	// command in SSH_ORIGINAL_COMMAND, as scripts/demo.sh does.
	ssh := "#!/bin/sh\nwhile [ $# -gt 1 ]; do shift; done\nSSH_ORIGINAL_COMMAND=\"$1\" exec '" + pikuBin + "'\n"
	if err := os.WriteFile(b.sshCmd, []byte(ssh), 0o755); err != nil {
		return err
	}

	daemonLog, err := os.Create(filepath.Join(dir, "daemon.log"))
	if err != nil {
		return err
	}
	defer daemonLog.Close()
	daemon := exec.Command(pikuBin, "daemon")
	daemon.Env = b.env
	daemon.Stdout, daemon.Stderr = daemonLog, daemonLog
	if err := daemon.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- daemon.Wait() }()
	defer func() {
		daemon.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			daemon.Process.Kill()
			<-exited
		}
	}()
	if err := waitDaemon(ctx, root, exited); err != nil {
		return fmt.Errorf("daemon: %w\n%s", err, tail(filepath.Join(dir, "daemon.log")))
	}

	type key struct{ app, kase string }
	results := map[key][]time.Duration{}
	const firstOfKind = "first deploy of the first app (makes the virtualenv template)"
	for i := 1; i <= runs; i++ {
		for _, a := range apps {
			name := fmt.Sprintf("%s%d", a.prefix, i)
			for v, kase := range []string{"first deploy", "redeploy"} {
				if a.name == "Python" && i == 1 && v == 0 {
					kase = firstOfKind
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				d, err := b.push(ctx, a, name, v+1)
				if err != nil {
					return fmt.Errorf("%s %s (%s): %w", a.name, kase, name, err)
				}
				fmt.Fprintf(os.Stderr, "%-7s %-12s %-5s %v\n", a.name, kase, name, d.Round(time.Millisecond))
				results[key{a.name, kase}] = append(results[key{a.name, kase}], d)
			}
		}
	}

	fmt.Printf("git push until the new version answers through piku's proxy (%d runs each, polled every %v)\n\n", runs, pollEvery)
	fmt.Println("| app | case | median | min | max |")
	fmt.Println("|---|---|---:|---:|---:|")
	for _, a := range apps {
		for _, kase := range []string{firstOfKind, "first deploy", "redeploy"} {
			ds := results[key{a.name, kase}]
			if len(ds) == 0 {
				continue
			}
			slices.Sort(ds)
			fmt.Printf("| %s | %s | %s | %s | %s |\n", a.name, kase, ms(median(ds)), ms(ds[0]), ms(ds[len(ds)-1]))
		}
	}
	fmt.Println()
	fmt.Printf("Machine: nproc %d, %s, %s\n", runtime.NumCPU(), output("go", "version"), output("git", "version"))
	fmt.Println("The push goes over an ssh stand-in that runs piku's forced command directly: sshd's own connection setup (handshake, key exchange, authentication) is not included.")
	fmt.Println("Go builds use the invoking user's Go build and module caches (warm after the first build).")
	return nil
}

// push commits version n of app a as name and pushes it, returning the
// time from starting `git push` until an HTTP GET through the proxy
// answers with that version.
func (b *bench) push(ctx context.Context, a app, name string, n int) (time.Duration, error) {
	repo := filepath.Join(b.dir, "src", name)
	version := fmt.Sprintf("version=%s-v%d;", name, n)
	if n == 1 {
		if err := os.MkdirAll(repo, 0o755); err != nil {
			return 0, err
		}
		if err := b.git(ctx, repo, "init", "-q", "-b", "main"); err != nil {
			return 0, err
		}
		if err := b.git(ctx, repo, "remote", "add", "piku", "piku@bench:"+name); err != nil {
			return 0, err
		}
	}
	for f, data := range a.files(name, version) {
		if err := os.WriteFile(filepath.Join(repo, f), []byte(data), 0o644); err != nil {
			return 0, err
		}
	}
	if err := b.git(ctx, repo, "add", "."); err != nil {
		return 0, err
	}
	if err := b.git(ctx, repo, "-c", "user.name=bench", "-c", "user.email=bench@example.invalid",
		"-c", "commit.gpgsign=false", "commit", "-qm", version); err != nil {
		return 0, err
	}

	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	logPath := filepath.Join(b.dir, fmt.Sprintf("push-%s-%d.log", name, n))
	out, err := os.Create(logPath)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	cmd := exec.CommandContext(ctx, "git", "-C", repo, "push", "-q", "piku", "main")
	cmd.Env = append(slices.Clone(b.env), "GIT_SSH_COMMAND="+b.sshCmd)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second

	pushed := make(chan error, 1)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	go func() { pushed <- cmd.Wait() }()
	answered := make(chan time.Duration, 1)
	go func() {
		t := time.NewTicker(pollEvery)
		defer t.Stop()
		for {
			if b.answers(ctx, name, version) {
				answered <- time.Since(start)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()

	var took time.Duration
	select {
	case took = <-answered:
	case err := <-pushed:
		if err != nil {
			return 0, fmt.Errorf("git push: %w\n%s", err, tail(logPath))
		}
		select {
		case took = <-answered:
		case <-ctx.Done():
			return 0, fmt.Errorf("pushed, but %s never answered with %q: %w\n%s", name, version, ctx.Err(), tail(logPath))
		}
		return took, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("no answer with %q: %w\n%s", version, ctx.Err(), tail(logPath))
	}
	// The new version answers; the push must still succeed.
	if err := <-pushed; err != nil {
		return 0, fmt.Errorf("git push: %w\n%s", err, tail(logPath))
	}
	return took, nil
}

// answers reports whether a GET through the proxy for app name returns a
// body with version in it.
func (b *bench) answers(ctx context.Context, name, version string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.proxy+"/", nil)
	if err != nil {
		return false
	}
	req.Host = name + ".bench"
	resp, err := b.client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return err == nil && resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(version))
}

func (b *bench) git(ctx context.Context, dir string, args ...string) error {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	cmd.Env = b.env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// waitDaemon waits until the daemon answers on its control socket.
func waitDaemon(ctx context.Context, root layout.Root, exited <-chan error) error {
	c := control.NewClient(root.Socket())
	var err error
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); {
		if _, err = c.Ping(ctx); err == nil {
			return nil
		}
		select {
		case e := <-exited:
			return fmt.Errorf("exited: %v", e)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return errors.Join(errors.New("not answering after 30s"), err)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func median(sorted []time.Duration) time.Duration {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

func output(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return name + ": " + err.Error()
	}
	return strings.TrimSpace(string(out))
}

// tail returns the last lines of a log file, for error messages.
func tail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}
