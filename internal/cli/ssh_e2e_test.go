package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/deploy"
	"github.com/piku/piku/internal/layout"
	"github.com/piku/piku/internal/metrics"
	"github.com/piku/piku/internal/testdeps"
)

// pushEnv is a server for end-to-end push tests: the real piku binary
// behind a real OpenSSH sshd on a loopback port, with its daemon running.
type pushEnv struct {
	t       *testing.T
	dir     string
	root    layout.Root
	sshCmd  string // GIT_SSH_COMMAND
	sshPort int
	user    string
	home    string // the piku user's HOME (authorized_keys)
	bin     string // the piku binary
	// stopDaemon stops the daemon and waits for it to exit.
	stopDaemon func()
	// httpPort is where the daemon's proxy serves HTTP.
	httpPort int
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond until it holds; the test's own timeout is the bound.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	wait := testdeps.Waiting(t)
	for {
		ok, last := cond()
		if ok {
			return
		}
		select {
		case <-wait.Done():
			t.Fatalf("%s: gave up before the test's timeout; last: %s", what, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func startPushEnv(t *testing.T) *pushEnv {
	e := newPushEnv(t)
	e.piku(t, "HOME="+e.home).run("setup:ssh", filepath.Join(e.dir, "userkey.pub"))
	e.startDaemon(testdeps.PortsSSH, 500)
	return e
}

// newPushEnv builds piku and starts sshd with a host key and a user key
// (dir/userkey), letting in no key yet and starting no daemon.
func newPushEnv(t *testing.T) *pushEnv {
	sshd := testdeps.Require(t, "sshd", "apt-get install openssh-server", "/usr/sbin")
	keygen := testdeps.Require(t, "ssh-keygen", "apt-get install openssh-client")
	testdeps.Require(t, "ssh", "apt-get install openssh-client")
	testdeps.Require(t, "git", "apt-get install git")
	dir := t.TempDir()
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	e := &pushEnv{t: t, dir: dir, user: me.Username}
	if e.root, err = layout.New(filepath.Join(dir, "root")); err != nil {
		t.Fatal(err)
	}
	bin := buildPiku(t, dir) // dir/piku, which e.piku runs
	home := filepath.Join(dir, "home")
	for _, k := range []string{"hostkey", "userkey"} {
		if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	e.home, e.bin = home, bin

	e.sshPort = freePort(t)
	cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s/hostkey
AuthorizedKeysFile %s/.ssh/authorized_keys
StrictModes no
UsePAM no
PermitRootLogin yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PidFile %s/sshd.pid
SetEnv PATH=%s
`, e.sshPort, dir, home, dir, os.Getenv("PATH"))
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.MkdirAll("/run/sshd", 0o755) // privilege separation directory
	sshdLog, err := os.Create(filepath.Join(dir, "sshd.log"))
	if err != nil {
		t.Fatal(err)
	}
	sd := exec.Command(sshd, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	sd.Stdout, sd.Stderr = sshdLog, sshdLog
	if err := sd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sd.Process.Kill(); _ = sd.Wait() })
	e.sshCmd = fmt.Sprintf("ssh -i %s/userkey -p %d -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes", dir, e.sshPort)
	waitFor(t, "sshd listening", func() (bool, string) {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(e.sshPort))
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})

	return e
}

// startDaemon starts the daemon, its apps on the n ports of the test port
// window at offset.
func (e *pushEnv) startDaemon(offset, n int) {
	http, https := freePort(e.t), freePort(e.t)
	e.httpPort = http
	e.stopDaemon = startDaemon(e.t, e.bin, e.root, e.dir, "HOME="+e.home,
		"PIKU_HTTP=127.0.0.1:"+strconv.Itoa(http), "PIKU_HTTPS=127.0.0.1:"+strconv.Itoa(https),
		"PIKU_ACME=false", portRange(offset, n), "PIKU_SHUTDOWN_TIMEOUT=20s")
}

type cmdRunner struct {
	t    *testing.T
	name string
	args []string
	dir  string
	env  []string
}

// piku runs the built binary locally against the test root.
func (e *pushEnv) piku(t *testing.T, env ...string) cmdRunner {
	return cmdRunner{t: t, name: filepath.Join(e.dir, "piku"), args: []string{"--root", e.root.Dir()}, env: env}
}

func (r cmdRunner) output(args ...string) (string, error) {
	cmd := exec.Command(r.name, append(r.args, args...)...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), append([]string{"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com"}, r.env...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (r cmdRunner) run(args ...string) string {
	r.t.Helper()
	out, err := r.output(args...)
	if err != nil {
		r.t.Fatalf("%s %s: %v\n%s", filepath.Base(r.name), strings.Join(args, " "), err, out)
	}
	return out
}

// checkout is a developer's working copy of an app with a piku remote.
type checkout struct {
	e   *pushEnv
	dir string
	app string
}

func (e *pushEnv) newCheckout(app string) *checkout {
	c := &checkout{e: e, dir: e.t.TempDir(), app: app}
	c.git().run("init", "-q", "-b", "main")
	c.git().run("remote", "add", "piku", e.user+"@127.0.0.1:"+app)
	return c
}

func (c *checkout) git() cmdRunner {
	return cmdRunner{t: c.e.t, name: "git", dir: c.dir, env: []string{"GIT_SSH_COMMAND=" + c.e.sshCmd}}
}

func (c *checkout) commit(files map[string]string) {
	c.e.t.Helper()
	for p, content := range files {
		full := filepath.Join(c.dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			c.e.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			c.e.t.Fatal(err)
		}
	}
	c.git().run("add", "-A")
	c.git().run("commit", "-q", "--allow-empty", "-m", "change")
}

// push pushes refspec and returns git's output and error.
func (c *checkout) push(refspec string) (string, error) {
	return c.git().output("push", "piku", refspec)
}

func (c *checkout) mustPush(refspec string) string {
	c.e.t.Helper()
	out, err := c.push(refspec)
	if err != nil {
		c.e.t.Fatalf("git push %s: %v\n%s", refspec, err, out)
	}
	return out
}

// waitBody waits until app's web.1 answers with a body matching re.
func (e *pushEnv) waitBody(t *testing.T, app, re string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	waitFor(t, app+" answering "+re, func() (bool, string) {
		st, err := control.NewClient(e.root.Socket()).Status(context.Background(), app)
		if err != nil {
			return false, err.Error()
		}
		for _, in := range st.Instances {
			if in.Kind != "web" || in.State != "running" || in.Port == 0 {
				continue
			}
			code, body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", in.Port), "")
			if err == nil && code == 200 && rx.MatchString(body) {
				return true, ""
			}
			return false, fmt.Sprintf("%d %q %v", code, body, err)
		}
		return false, fmt.Sprintf("no running web instance: %+v", st.Instances)
	})
}

// staticApp is a generic app: python3's http.server serving index.html.
func staticApp(version string, extra map[string]string) map[string]string {
	files := map[string]string{
		"Procfile":   "web: python3 -m http.server --bind 127.0.0.1 $PORT\n",
		"index.html": "version " + version + "\n",
	}
	for k, v := range extra {
		files[k] = v
	}
	return files
}

func TestSSHPushEndToEnd(t *testing.T) {
	testdeps.Require(t, "python3", "apt-get install python3")
	e := startPushEnv(t)

	t.Run("refused forced command", func(t *testing.T) {
		for _, cmd := range []string{"daemon", "git-hook hello", "ls; id", "sh -c id", "--root=/tmp setup", "--root /tmp daemon", "apps --root=/tmp"} {
			args := append(strings.Fields(e.sshCmd)[1:], "--", e.user+"@127.0.0.1", cmd)
			out, err := exec.Command("ssh", args...).CombinedOutput()
			if err == nil {
				t.Errorf("%q was run over SSH:\n%s", cmd, out)
			}
			if !strings.Contains(string(out), "refusing") && !strings.Contains(string(out), "unknown command") {
				t.Errorf("%q: no refusal in %q", cmd, out)
			}
		}
	})

	hello := e.newCheckout("hello")
	t.Run("first deploy", func(t *testing.T) {
		hello.commit(staticApp("1", nil))
		out := hello.mustPush("main")
		for _, want := range []string{"Generic app detected", "is live", "[new branch]"} {
			if !strings.Contains(out, want) {
				t.Errorf("push output lacks %q:\n%s", want, out)
			}
		}
		e.waitBody(t, "hello", "version 1")
		// The pushing client's address is let through NGINX_CLOUDFLARE_ACL.
		if b, err := os.ReadFile(e.root.DeployedFromFile("hello")); err != nil || strings.TrimSpace(string(b)) != "127.0.0.1" {
			t.Errorf("DEPLOYED_FROM = %q, %v", b, err)
		}
	})
	t.Run("redeploy", func(t *testing.T) {
		hello.commit(staticApp("2", nil))
		hello.mustPush("main")
		e.waitBody(t, "hello", "version 2")
		out := e.piku(t).run("releases", "hello")
		if n := strings.Count(out, "\n"); n != 3 || !strings.Contains(out, "* ") {
			t.Errorf("releases:\n%s", out)
		}
	})
	t.Run("client commands", func(t *testing.T) {
		// On a developer's machine, inside the checkout, piku runs the
		// command on the server its piku remote names, for that app.
		cl := cmdRunner{t: t, name: filepath.Join(e.dir, "piku"), dir: hello.dir, env: []string{"GIT_SSH_COMMAND=" + e.sshCmd}}
		if out := cl.run("ps"); !regexp.MustCompile(`(?m)^web\.1 +running`).MatchString(out) {
			t.Errorf("piku ps through the remote:\n%s", out)
		}
		if out := cl.run("releases"); strings.Count(out, "\n") != 3 {
			t.Errorf("piku releases through the remote:\n%s", out)
		}
		var top []metrics.AppTop
		if out := cl.run("top", "--json"); json.Unmarshal([]byte(out), &top) != nil ||
			len(top) != 1 || top[0].App != "hello" || top[0].InstancesUp != 1 {
			t.Errorf("piku top --json through the remote:\n%s", out)
		}
		out, err := cl.output("config:get", "NOT_SET")
		var xe *exec.ExitError
		if !errors.As(err, &xe) || xe.ExitCode() != 1 || !strings.Contains(out, "NOT_SET is not set") {
			t.Errorf("config:get of a missing key: %v\n%s", err, out)
		}
	})
	live := strings.TrimSpace(hello.git().run("rev-parse", "HEAD"))
	for _, bad := range []struct {
		name, want string
		files      map[string]string
	}{
		{"failing build", "build failed", map[string]string{"go.mod": "module x\n\ngo 1.22\n", "main.go": "package main\nfunc main() { nope }\n"}},
		{"failing release", "release failed", map[string]string{"Procfile": "web: python3 -m http.server --bind 127.0.0.1 $PORT\nrelease: exit 7\n"}},
		{"app that never answers", "not ready within 3s", map[string]string{"Procfile": "web: sleep 1000\n", "ENV": "PIKU_BOOT_TIMEOUT=3\n"}},
	} {
		t.Run(bad.name, func(t *testing.T) {
			c := e.newCheckout("hello")
			c.git().run("pull", "-q", "piku", "main")
			c.commit(staticApp("3", bad.files))
			out, err := c.push("main")
			if err == nil || !strings.Contains(out, "pre-receive hook declined") || !strings.Contains(out, bad.want) {
				t.Errorf("push: err %v, output:\n%s", err, out)
			}
			e.waitBody(t, "hello", "version 2")
			remote := strings.Fields(c.git().run("ls-remote", "piku", "refs/heads/main"))
			if len(remote) == 0 || remote[0] != live {
				t.Errorf("server branch = %v, want the live %s", remote, live)
			}
		})
	}
	t.Run("failing first push", func(t *testing.T) {
		// Nothing older to fall back to: the deploy removes the app, and
		// says so rather than that its processes are retried.
		c := e.newCheckout("broken")
		c.commit(map[string]string{"Procfile": "web: false\n"})
		out, err := c.push("main")
		if err == nil || !strings.Contains(out, "pre-receive hook declined") {
			t.Fatalf("push: err %v, output:\n%s", err, out)
		}
		for _, want := range []string{
			"The first release of 'broken' did not come up: its processes were stopped and the app removed",
			"nothing of 'broken' runs: push again to retry",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("push output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "retried with backoff") || strings.Contains(out, "stay supervised") {
			t.Errorf("push output says the processes are kept:\n%s", out)
		}
		if _, err := control.NewClient(e.root.Socket()).Status(context.Background(), "broken"); !errors.Is(err, control.ErrUnknownApp) {
			t.Errorf("status of the removed app: %v", err)
		}
	})
	t.Run("branch deletion and tags", func(t *testing.T) {
		hello.git().run("branch", "-f", "extra", "main")
		hello.mustPush("extra")
		out := hello.mustPush(":extra")
		if !strings.Contains(out, "deleted: nothing to deploy") {
			t.Errorf("deletion output:\n%s", out)
		}
		hello.git().run("tag", "v1")
		if out := hello.mustPush("v1"); !strings.Contains(out, "tags are not deployed") {
			t.Errorf("tag output:\n%s", out)
		}
		e.waitBody(t, "hello", "version 2")
	})
	t.Run("clone back", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "clone")
		cr := cmdRunner{t: t, name: "git", env: []string{"GIT_SSH_COMMAND=" + e.sshCmd}}
		cr.run("clone", "-q", e.user+"@127.0.0.1:hello.git", dir)
		if b, err := os.ReadFile(filepath.Join(dir, "index.html")); err != nil || string(b) != "version 2\n" {
			t.Errorf("cloned index.html = %q, %v", b, err)
		}
		out, err := cr.output("clone", "-q", e.user+"@127.0.0.1:nosuchapp", filepath.Join(t.TempDir(), "x"))
		if err == nil || !strings.Contains(out, "not found") {
			t.Errorf("cloning a missing app: %v\n%s", err, out)
		}
	})
	t.Run("rollback", func(t *testing.T) {
		// Releases, newest first: main again through the extra branch,
		// main (version 2), the first deploy (version 1).
		var rels []struct {
			ID       string `json:"id"`
			Revision string `json:"revision"`
			Live     bool   `json:"live"`
		}
		if err := json.Unmarshal([]byte(e.piku(t).run("releases", "hello", "--json")), &rels); err != nil {
			t.Fatal(err)
		}
		if len(rels) != 3 || !rels[0].Live {
			t.Fatalf("releases: %+v", rels)
		}
		out := e.piku(t).run("rollback", "hello")
		if !strings.Contains(out, "is live") || !strings.Contains(out, rels[1].ID) {
			t.Errorf("rollback output:\n%s", out)
		}
		e.waitBody(t, "hello", "version 2")
		out = e.piku(t).run("rollback", "hello", rels[2].ID)
		if !strings.Contains(out, "is live") {
			t.Errorf("rollback output:\n%s", out)
		}
		e.waitBody(t, "hello", "version 1")
		if out, err := e.piku(t).output("rollback", "hello", "nope"); err == nil || !strings.Contains(out, "no release") {
			t.Errorf("rollback to a missing release: %v\n%s", err, out)
		}
	})
	t.Run("two pushes of one app at once", func(t *testing.T) {
		// Both start from the same revision; the release command keeps the
		// first deploy busy while the second push arrives. Whatever the
		// order, what each client is told, the server's branch and the
		// live release must agree.
		base := e.newCheckout("race")
		procfile := map[string]string{"Procfile": "web: python3 -m http.server --bind 127.0.0.1 $PORT\nrelease: sleep 2\n"}
		base.commit(staticApp("base", procfile))
		base.mustPush("main")
		clients := []*checkout{e.newCheckout("race"), e.newCheckout("race")}
		heads := make([]string, len(clients))
		for i, c := range clients {
			c.git().run("pull", "-q", "piku", "main")
			c.commit(staticApp(fmt.Sprintf("racer %d", i), procfile))
			heads[i] = strings.TrimSpace(c.git().run("rev-parse", "HEAD"))
		}
		outs, errs := make([]string, len(clients)), make([]error, len(clients))
		var wg sync.WaitGroup
		for i, c := range clients {
			wg.Go(func() { outs[i], errs[i] = c.push("main") })
		}
		wg.Wait()
		branch := strings.Fields(base.git().run("ls-remote", "piku", "refs/heads/main"))[0]
		var rels []struct {
			Revision string `json:"revision"`
			Live     bool   `json:"live"`
		}
		if err := json.Unmarshal([]byte(e.piku(t).run("releases", "race", "--json")), &rels); err != nil {
			t.Fatal(err)
		}
		live := ""
		for _, r := range rels {
			if r.Live {
				live = r.Revision
			}
		}
		if live != branch {
			t.Errorf("the server's branch is %s but release %s is live", branch, live)
		}
		told := 0
		for i := range clients {
			if errs[i] == nil {
				told++
				if heads[i] != branch {
					t.Errorf("push %d was told it succeeded, but the branch is %s, not its %s:\n%s", i, branch, heads[i], outs[i])
				}
			} else if heads[i] == branch {
				t.Errorf("push %d was told it failed, but its revision is the branch:\n%s", i, outs[i])
			}
		}
		if told != 1 {
			t.Errorf("%d pushes succeeded, want exactly 1:\n%s\n---\n%s", told, outs[0], outs[1])
		}
		e.waitBody(t, "race", "racer")
	})
	t.Run("release bounded", func(t *testing.T) {
		// A release that never ends is stopped at PIKU_RELEASE_TIMEOUT,
		// with everything it started, and the next push is not blocked.
		c := e.newCheckout("slowrel")
		c.commit(staticApp("1", map[string]string{
			"Procfile": "web: python3 -m http.server --bind 127.0.0.1 $PORT\nrelease: sh -c 'sleep 1001' & sleep 1002\n",
			"ENV":      "PIKU_RELEASE_TIMEOUT=1\n",
		}))
		out, err := c.push("main")
		if err == nil || !strings.Contains(out, "release failed") || !strings.Contains(out, "timed out after 1s (PIKU_RELEASE_TIMEOUT)") {
			t.Errorf("push: %v\n%s", err, out)
		}
		waitGone(t, e.dir, "sleep 1001")
		waitGone(t, e.dir, "sleep 1002")
		c.commit(staticApp("2", map[string]string{"Procfile": "web: python3 -m http.server --bind 127.0.0.1 $PORT\n"}))
		c.mustPush("main")
		e.waitBody(t, "slowrel", "version 2")
	})
	t.Run("client goes away", func(t *testing.T) {
		// The pushing client disconnects during a silent release: the
		// release's process group is stopped and the deploy lock is free
		// again.
		c := e.newCheckout("gone")
		c.commit(staticApp("1", map[string]string{
			"Procfile": "web: python3 -m http.server --bind 127.0.0.1 $PORT\nrelease: echo started; exec sleep 1003\n",
		}))
		cmd := exec.Command("git", "push", "piku", "main")
		cmd.Dir = c.dir
		cmd.Env = append(os.Environ(), "GIT_SSH_COMMAND="+e.sshCmd)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stderr)
		for sc.Scan() && !strings.Contains(sc.Text(), "started") {
		}
		for len(processesWith("sleep 1003", e.dir)) == 0 {
			time.Sleep(50 * time.Millisecond)
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		waitGone(t, e.dir, "sleep 1003")
		// The lock is free: taking it returns (the test's timeout is the
		// bound).
		unlock, err := deploy.Lock(t.Context(), e.root.DeployLock("gone"), nil)
		if err != nil {
			t.Fatal(err)
		}
		unlock()
	})
	t.Run("auto restart off", func(t *testing.T) {
		// PIKU_AUTO_RESTART=false: a push builds and records the release,
		// but the running processes keep their code until `piku restart`.
		c := e.newCheckout("manual")
		env := map[string]string{"ENV": "PIKU_AUTO_RESTART=false\n"}
		c.commit(staticApp("1", env))
		c.mustPush("main")
		e.waitBody(t, "manual", "version 1")
		c.commit(staticApp("2", env))
		if out := c.mustPush("main"); !strings.Contains(out, "keep their code and settings until `piku restart manual`") {
			t.Errorf("push output:\n%s", out)
		}
		st, err := control.NewClient(e.root.Socket()).Status(context.Background(), "manual")
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range st.Instances {
			if code, body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", in.Port), ""); err != nil || code != 200 || body != "version 1\n" {
				t.Errorf("after the push, %s.%d answers %d %q %v; want version 1 until a restart", in.Kind, in.N, code, body, err)
			}
		}
		e.piku(t).run("restart", "manual")
		e.waitBody(t, "manual", "version 2")
	})
	t.Run("redeploy under load", func(t *testing.T) {
		c := e.newCheckout("loaded")
		env := map[string]string{"ENV": "NGINX_SERVER_NAME=loaded.test\n"}
		c.commit(staticApp("A", env))
		c.mustPush("main")
		url := fmt.Sprintf("http://127.0.0.1:%d/", e.httpPort)
		waitFor(t, "loaded.test through the proxy", func() (bool, string) {
			code, body, err := httpGet(url, "loaded.test")
			return err == nil && code == 200 && strings.Contains(body, "version A"), fmt.Sprint(code, body, err)
		})
		l := steadyLoad(testClient, url, "loaded.test", false)
		defer l.stop()
		c.commit(staticApp("B", env))
		c.mustPush("main")
		waitFor(t, "version B through the proxy", func() (bool, string) {
			code, body, err := httpGet(url, "loaded.test")
			return err == nil && code == 200 && strings.Contains(body, "version B"), fmt.Sprint(code, body, err)
		})
		// How many requests the redeploy overlapped depends on how busy
		// the machine is; wait for a hundred rather than count on a rate.
		waitFor(t, "100 requests sent", func() (bool, string) {
			n := l.sent()
			return n >= 100, fmt.Sprint(n, " sent")
		})
		res := l.stop()
		total, failures := res.total, res.failures
		t.Logf("%d requests during the redeploy, %d failed", total, len(failures))
		if len(failures) > 0 {
			t.Errorf("%d of %d requests failed during the redeploy; first: %q", len(failures), total, failures[0])
		}
	})
	t.Run("release holds requests", func(t *testing.T) {
		// PIKU_RELEASE_HOLD: the app's requests wait while its release
		// command runs (a migration the running version must not see
		// half done), and are answered by the new release once it is
		// live. The release here waits for the test.
		c := e.newCheckout("paused")
		env := "NGINX_SERVER_NAME=paused.test\nPIKU_RELEASE_HOLD=1\n"
		c.commit(staticApp("A", map[string]string{"ENV": env}))
		c.mustPush("main")
		url := fmt.Sprintf("http://127.0.0.1:%d/", e.httpPort)
		waitFor(t, "paused.test through the proxy", func() (bool, string) {
			code, body, err := httpGet(url, "paused.test")
			return err == nil && code == 200 && strings.Contains(body, "version A"), fmt.Sprint(code, body, err)
		})
		data := e.root.Data("paused")
		c.commit(staticApp("B", map[string]string{"ENV": env,
			"Procfile": "web: python3 -m http.server --bind 127.0.0.1 $PORT\n" +
				"release: touch $DATA_ROOT/migrating; while [ ! -e $DATA_ROOT/migrated ]; do sleep 0.05; done\n"}))
		type result struct {
			out string
			err error
		}
		pushed := make(chan result, 1)
		go func() {
			out, err := c.push("main")
			pushed <- result{out, err}
		}()
		waitFor(t, "the release command running", func() (bool, string) {
			_, err := os.Stat(filepath.Join(data, "migrating"))
			return err == nil, fmt.Sprint(err)
		})
		answer := make(chan string, 1)
		go func() {
			code, body, err := httpGet(url, "paused.test")
			answer <- fmt.Sprint(code, " ", strings.TrimSpace(body), " ", err)
		}()
		client := control.NewClient(e.root.Socket())
		waitFor(t, "the request held", func() (bool, string) {
			select {
			case a := <-answer:
				t.Fatalf("answered while the release runs: %s", a)
			default:
			}
			st, err := client.Status(context.Background(), "paused")
			return err == nil && st.Held == 1, fmt.Sprint(st.Held, err)
		})
		if out := e.piku(t).run("ps", "paused"); !strings.Contains(out, "held: 1 requests wait") {
			t.Errorf("ps while a request is held:\n%s", out)
		}
		if err := os.WriteFile(filepath.Join(data, "migrated"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if a := <-answer; a != "200 version B <nil>" {
			t.Errorf("the request held during the release got %q, want version B", a)
		}
		r := <-pushed
		if r.err != nil || !strings.Contains(r.out, "Holding the requests to 'paused'") {
			t.Errorf("push: %v\n%s", r.err, r.out)
		}
	})
	t.Run("two apps at once", func(t *testing.T) {
		apps := []*checkout{e.newCheckout("one"), e.newCheckout("two")}
		var wg sync.WaitGroup
		errs := make([]string, len(apps))
		for i, c := range apps {
			c.commit(staticApp(c.app, map[string]string{"Procfile": "web: python3 -m http.server --bind 127.0.0.1 $PORT\nrelease: sleep 1\n"}))
			wg.Add(1)
			go func() {
				defer wg.Done()
				if out, err := c.push("main"); err != nil {
					errs[i] = fmt.Sprintf("%v\n%s", err, out)
				}
			}()
		}
		wg.Wait()
		for i, s := range errs {
			if s != "" {
				t.Fatalf("push of %s: %s", apps[i].app, s)
			}
		}
		e.waitBody(t, "one", "version one")
		e.waitBody(t, "two", "version two")
	})
	t.Run("same app twice at once", func(t *testing.T) {
		a, b := e.newCheckout("twice"), e.newCheckout("twice")
		slow := map[string]string{"Procfile": "web: python3 -m http.server --bind 127.0.0.1 $PORT\nrelease: sleep 2\n"}
		a.commit(staticApp("a", slow))
		b.commit(staticApp("b", slow))
		var wg sync.WaitGroup
		outs := make([]string, 2)
		fails := make([]error, 2)
		for i, c := range []struct {
			co  *checkout
			ref string
		}{{a, "main:a"}, {b, "main:b"}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				outs[i], fails[i] = c.co.push(c.ref)
			}()
		}
		wg.Wait()
		for i := range outs {
			if fails[i] != nil {
				t.Fatalf("push %d: %v\n%s", i, fails[i], outs[i])
			}
		}
		if !strings.Contains(outs[0]+outs[1], "Another deploy of 'twice' is running") {
			t.Errorf("the pushes were not serialised:\n%s\n%s", outs[0], outs[1])
		}
		rels := e.piku(t).run("releases", "twice", "--json")
		if strings.Count(rels, `"id"`) != 2 {
			t.Errorf("releases:\n%s", rels)
		}
	})
	t.Run("python", func(t *testing.T) {
		c := e.newCheckout("py")
		c.commit(map[string]string{
			"requirements.txt": "",
			"app.py": `import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers()
        self.wfile.write(("python from " + sys.prefix).encode())
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`,
			"Procfile": "web: python app.py\n",
		})
		out := c.mustPush("main")
		if !strings.Contains(out, "Python app detected") {
			t.Errorf("output:\n%s", out)
		}
		e.waitBody(t, "py", "python from "+regexp.QuoteMeta(e.root.Env("py")))
	})
	t.Run("node", func(t *testing.T) {
		testdeps.Require(t, "npm", "apt-get install npm")
		c := e.newCheckout("nodeapp")
		c.commit(map[string]string{
			"package.json": `{"name": "nodeapp", "version": "1.0.0", "dependencies": {"ms": "2.1.3"}}` + "\n",
			"server.js": `const http = require("http"), ms = require("ms");
http.createServer((q, r) => r.end("node says " + ms(60000))).listen(+process.env.PORT, "127.0.0.1");
`,
			"Procfile": "web: node server.js\n",
		})
		out := c.mustPush("main")
		if !strings.Contains(out, "Node app detected") {
			t.Errorf("output:\n%s", out)
		}
		e.waitBody(t, "nodeapp", "node says 1m")
	})
	t.Run("go", func(t *testing.T) {
		testdeps.Require(t, "go", "apt-get install golang")
		c := e.newCheckout("goapp")
		c.commit(map[string]string{
			"go.mod": "module example.com/goapp\n\ngo 1.22\n",
			"main.go": `package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "go says hi") })
	http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil)
}
`,
			"Procfile": "web: goapp\n",
		})
		out := c.mustPush("main")
		if !strings.Contains(out, "Go app detected") {
			t.Errorf("output:\n%s", out)
		}
		e.waitBody(t, "goapp", "go says hi")

		// piku deploy rebuilds the live revision into a new release.
		out = e.piku(t).run("deploy", "goapp")
		for _, want := range []string{"Go app detected", "is live"} {
			if !strings.Contains(out, want) {
				t.Errorf("piku deploy output lacks %q:\n%s", want, out)
			}
		}
		if n := strings.Count(e.piku(t).run("releases", "goapp", "--json"), `"id"`); n != 2 {
			t.Errorf("%d releases after piku deploy, want 2", n)
		}
		e.waitBody(t, "goapp", "go says hi")
	})
}

// waitGone waits until no process working under dir has marker in its
// command line (the test's timeout is the bound).
func waitGone(t *testing.T, dir, marker string) {
	t.Helper()
	for len(processesWith(marker, dir)) > 0 {
		time.Sleep(50 * time.Millisecond)
	}
}
