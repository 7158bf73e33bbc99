package cli

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/piku/piku/internal/control"
	"github.com/piku/piku/internal/procgroup"
	"github.com/piku/piku/internal/testdeps"
)

// pyApp is an app as Python piku deployed it.
type pyApp struct {
	name   string
	files  map[string]string // its repository
	config string            // envs/APP/ENV (config:set)
	port   int               // the PORT Python piku picked for it
}

// kv is one KEY=VALUE of an environment, in order.
type kv struct{ k, v string }

// pythonPikuRoot lays e.root out exactly as Python piku leaves it after
// `git push` of every app in apps and `piku setup:ssh` of the test's user
// key, with piku.py at script: repos/APP bare with piku's post-receive
// hook, apps/APP a clone of it, envs/APP/ENV, LIVE_ENV and SCALING, the
// uWSGI vassals spawn_worker writes for every Procfile entry (available and
// enabled), nginx confs and the authorized_keys line.
func pythonPikuRoot(t *testing.T, e *pushEnv, script string, apps []pyApp) {
	t.Helper()
	root := e.root
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	grp, err := user.LookupGroupId(me.Gid)
	if err != nil {
		t.Fatal(err)
	}
	gitIn := func(dir string, args ...string) string {
		t.Helper()
		return cmdRunner{t: t, name: "git", dir: dir}.run(args...)
	}
	write := func(p, content string, perm os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), perm); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{root.AppsDir(), root.ReposDir(), root.EnvsDir(), root.LogsDir(), root.DataDir(),
		root.CacheDir(), root.UwsgiAvailableDir(), root.UwsgiEnabledDir(), root.NginxDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range apps {
		// The developer's push, and the repository git-receive-pack made.
		work := t.TempDir()
		gitIn(work, "init", "-q", "-b", "main")
		for p, c := range a.files {
			write(filepath.Join(work, p), c, 0o644)
		}
		gitIn(work, "add", "-A")
		gitIn(work, "commit", "-q", "-m", "v1")
		gitIn(root.ReposDir(), "init", "--quiet", "--bare", "-b", "main", a.name)
		gitIn(work, "push", "-q", root.Repo(a.name), "main")
		write(root.RepoHook(a.name, "post-receive"), "#!/usr/bin/env bash\nset -e; set -o pipefail;\n"+
			"cat | PIKU_ROOT=\""+root.Dir()+"\" "+script+" git-hook "+a.name, 0o755)
		// cmd_git_hook: git clone into apps/.
		gitIn(root.AppsDir(), "clone", "--quiet", root.Repo(a.name), a.name)
		for _, d := range []string{root.Data(a.name), root.Logs(a.name)} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}

		// spawn_app: the environment, LIVE_ENV and SCALING.
		env := []kv{{"APP", a.name}, {"LOG_ROOT", root.LogsDir()}, {"DATA_ROOT", root.Data(a.name)},
			{"HOME", e.home}, {"USER", me.Username}, {"PATH", root.EnvBin(a.name) + ":" + os.Getenv("PATH")},
			{"PWD", root.App(a.name)}, {"VIRTUAL_ENV", root.Env(a.name)}}
		for _, src := range []string{a.files["ENV"], a.config} {
			for _, line := range strings.Split(strings.TrimSpace(src), "\n") {
				if k, v, ok := strings.Cut(line, "="); ok {
					env = append(env, kv{k, v})
				}
			}
		}
		env = append(env, kv{"NGINX_IPV4_ADDRESS", "0.0.0.0"}, kv{"NGINX_IPV6_ADDRESS", "[::]"},
			kv{"BIND_ADDRESS", "127.0.0.1"}, kv{"PORT", strconv.Itoa(a.port)})
		if a.config != "" {
			write(root.EnvFile(a.name), a.config, 0o600)
		}
		var live, scaling strings.Builder
		for _, p := range env {
			fmt.Fprintf(&live, "%s=%s\n", p.k, p.v)
		}
		write(root.LiveEnvFile(a.name), live.String(), 0o644)

		// spawn_worker: one vassal per entry, available and enabled.
		for _, line := range strings.Split(strings.TrimSpace(a.files["Procfile"]), "\n") {
			kind, command, _ := strings.Cut(line, ":")
			command = strings.TrimSpace(command)
			fmt.Fprintf(&scaling, "%s:1\n", kind)
			log := filepath.Join(root.Logs(a.name), kind)
			s := []kv{{"chdir", root.App(a.name)}, {"uid", me.Username}, {"gid", grp.Name}, {"master", "true"},
				{"project", a.name}, {"max-requests", "1024"}, {"listen", "48"}, {"processes", "2"},
				{"procname-prefix", a.name + ":" + kind + ":"}, {"enable-threads", "true"},
				{"log-x-forwarded-for", "false"}, {"log-maxsize", "1048576"},
				{"logfile-chown", me.Username + ":" + grp.Name}, {"logfile-chmod", "640"},
				{"logto2", log + ".1.log"}, {"log-backupname", log + ".1.log.old"}}
			switch {
			case strings.HasPrefix(kind, "cron"):
				s = append(s, kv{"cron", strings.ReplaceAll(strings.ReplaceAll(command, "*/", "-"), "*", "-1")})
			case kind == "wsgi":
				addr := "127.0.0.1:" + strconv.Itoa(a.port)
				s = append(s, kv{"module", command}, kv{"threads", "4"}, kv{"plugin", "python3"},
					kv{"http", addr}, kv{"http-use-socket", addr}, kv{"http-socket", addr})
			default: // web and workers
				s = append(s, kv{"attach-daemon", command})
			}
			if kind == "wsgi" || kind == "web" {
				s = append(s, kv{"log-format", `%%(addr) - %%(user) [%%(ltime)] "%%(method) %%(uri) %%(proto)" %%(status) %%(size) "%%(referer)" "%%(uagent)" %%(msecs)ms`})
			}
			for _, p := range append(env, kv{"PROC_TYPE", kind}) {
				s = append(s, kv{"env", p.k + "=" + p.v})
			}
			var ini strings.Builder
			ini.WriteString("[uwsgi]\n")
			for _, p := range s {
				fmt.Fprintf(&ini, "%s = %s\n", p.k, p.v)
			}
			name := fmt.Sprintf("%s_%s.1.ini", a.name, kind)
			write(filepath.Join(root.UwsgiAvailableDir(), name), ini.String(), 0o644)
			write(filepath.Join(root.UwsgiEnabledDir(), name), ini.String(), 0o644)
		}
		write(root.ScalingFile(a.name), scaling.String(), 0o644)
		if host := lookup(env, "NGINX_SERVER_NAME"); host != "" {
			write(filepath.Join(root.NginxDir(), a.name+".conf"), fmt.Sprintf(
				"upstream %s { server 127.0.0.1:%d; }\nserver {\n  listen 0.0.0.0:80;\n  server_name %s;\n  location / { proxy_pass http://%s; }\n}\n",
				a.name, a.port, host, a.name), 0o644)
		}
	}
	// A conf of the administrator's own, which nothing carries over.
	write(filepath.Join(root.NginxDir(), "custom.conf"), "server { listen 8080; return 204; }\n", 0o644)

	// setup:ssh, as piku.py writes the line.
	pub, err := os.ReadFile(filepath.Join(e.dir, "userkey.pub"))
	if err != nil {
		t.Fatal(err)
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(e.home, ".ssh", "authorized_keys"), fmt.Sprintf(
		"command=\"FINGERPRINT=%s NAME=default %s $SSH_ORIGINAL_COMMAND\",no-agent-forwarding,no-user-rc,no-X11-forwarding,no-port-forwarding %s\n",
		ssh.FingerprintSHA256(key), script, strings.TrimSpace(string(pub))), 0o600)
}

func lookup(env []kv, k string) string {
	for _, p := range env {
		if p.k == k {
			return p.v
		}
	}
	return ""
}

// tree maps every file and link under dir (relative path) to its content
// or link target; missing dirs give an empty map.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			out[rel] = "-> " + target
			return err
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			out[rel] = string(b)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for p, w := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("%s: %s is missing", what, p)
		} else if g != w {
			t.Errorf("%s: %s is\n%s\nwant\n%s", what, p, g, w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: %s was not there before", what, p)
		}
	}
}

// waitHTTP waits until url (with Host host) answers 200 with a body
// matching re.
func waitHTTP(t *testing.T, url, host, re string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	waitFor(t, url+" ("+host+") answering "+re, func() (bool, string) {
		code, body, err := httpGet(url, host)
		return err == nil && code == 200 && rx.MatchString(body), fmt.Sprintf("%d %q %v", code, body, err)
	})
}

// TestMigrateFromPythonPikuAndBack takes over a PIKU_ROOT that Python piku
// left, serves every app without a redeploy, pushes a new version, rolls
// back to the adopted one, and goes back to Python piku: the files it
// needs are as it left them, and uWSGI's emperor serves the apps from
// them. docs/MIGRATING.md is the transcript of this test.
func TestMigrateFromPythonPikuAndBack(t *testing.T) {
	testdeps.Require(t, "python3", "apt-get install python3")
	uwsgi := testdeps.Require(t, "uwsgi", "apt-get install uwsgi uwsgi-plugin-python3")
	e := newPushEnv(t)
	script := filepath.Join(e.home, "piku.py")
	base := testdeps.PortBase() + testdeps.PortsMigrate
	apps := []pyApp{
		{name: "site", port: base + 90, config: "GREETING=hi\n", files: map[string]string{
			"Procfile": "web: python3 -m http.server --bind 127.0.0.1 $PORT\n" +
				"worker: sleep 100000\n" +
				"cron1: */10 * * * * echo tick\n",
			"ENV":         "NGINX_SERVER_NAME=site.test\nNGINX_INCLUDE_FILE=nginx.extra\n",
			"nginx.extra": "location /x { return 404; }\n",
			"index.html":  "site version 1\n",
		}},
		{name: "py", port: base + 91, files: map[string]string{
			"Procfile": "wsgi: app:application\n",
			"app.py": "import os\n\ndef application(environ, start_response):\n" +
				"    start_response('200 OK', [('Content-Type', 'text/plain')])\n" +
				"    return [('hello from %s\\n' % os.environ.get('APP')).encode()]\n",
		}},
	}
	pythonPikuRoot(t, e, script, apps)
	keysFile := filepath.Join(e.home, ".ssh", "authorized_keys")
	before := map[string]map[string]string{}
	kept := []string{"uwsgi-available", "uwsgi-enabled", "nginx", "repos/site/hooks", "repos/py/hooks",
		"envs/site/LIVE_ENV", "envs/py/LIVE_ENV", "envs/site/ENV", "envs/site/SCALING"}
	for _, p := range kept {
		before[p] = tree(t, filepath.Join(e.root.Dir(), p))
	}
	keysBefore := tree(t, keysFile)
	piku := e.piku(t, "HOME="+e.home)

	t.Run("check", func(t *testing.T) {
		all := tree(t, e.root.Dir())
		out := piku.run("migrate", "--check")
		t.Logf("piku migrate --check\n%s", out)
		for _, want := range []string{
			"apps/site: started from its checkout as it is",
			"uwsgi-available/site_web.1.ini: removed: the daemon runs this process itself (kept in python-piku/)",
			"uwsgi-enabled/site_cron1.1.ini: removed",
			"uwsgi-available/py_wsgi.1.ini: rewritten to serve HTTP on the port the daemon picks",
			"repos/site/hooks/post-receive: replaced by piku's pre-receive hook on the first push",
			"envs/py/LIVE_ENV: rewritten by the daemon",
			keysFile + ": 1 key lines run piku.py",
			`not carried over: app "site" sets NGINX_INCLUDE_FILE=nginx.extra`,
			"not carried over: nginx/custom.conf",
			"the daemon serves HTTP on :80 and HTTPS on :443",
			"the daemon requests an ACME certificate for site.test",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("migrate --check lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "nginx/site.conf") {
			t.Errorf("migrate --check calls the app's own nginx conf custom:\n%s", out)
		}
		sameTree(t, "after migrate --check", tree(t, e.root.Dir()), all)
	})

	t.Run("migrate", func(t *testing.T) {
		out := piku.run("migrate")
		t.Logf("piku migrate\n%s", out)
		if !strings.Contains(out, "Python piku's files are kept in "+e.root.PythonPikuDir()) ||
			!strings.Contains(out, ": 1 key lines now run "+e.bin) {
			t.Errorf("migrate:\n%s", out)
		}
		b, _ := os.ReadFile(keysFile)
		if !strings.Contains(string(b), "NAME=default PIKU_ROOT="+e.root.Dir()+" "+e.bin+` \"$SSH_ORIGINAL_COMMAND\"",no-agent-forwarding`) {
			t.Errorf("authorized_keys after migrate:\n%s", b)
		}
	})

	e.startDaemon(testdeps.PortsMigrate, 90)
	client := control.NewClient(e.root.Socket())
	proxyURL := fmt.Sprintf("http://127.0.0.1:%d/", e.httpPort)
	t.Run("every app serves", func(t *testing.T) {
		waitHTTP(t, proxyURL, "site.test", "^site version 1\n$")
		waitFor(t, "py's wsgi and site's worker running", func() (bool, string) {
			var seen []string
			for _, app := range []string{"py", "site"} {
				st, err := client.Status(t.Context(), app)
				if err != nil {
					return false, err.Error()
				}
				for _, in := range st.Instances {
					if in.State == "running" {
						seen = append(seen, fmt.Sprintf("%s %s.%d", app, in.Kind, in.N))
					}
					if app == "py" && in.Kind == "wsgi" && in.Port != 0 {
						if code, body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", in.Port), ""); err != nil || code != 200 || body != "hello from py\n" {
							return false, fmt.Sprintf("py: %d %q %v", code, body, err)
						}
					}
				}
				if app == "site" && (len(st.Cron) != 1 || st.Cron[0].Name != "cron1") {
					return false, fmt.Sprintf("site's cron: %+v", st.Cron)
				}
			}
			sort.Strings(seen)
			s := strings.Join(seen, ", ")
			return s == "py wsgi.1, site web.1, site worker.1", s
		})
	})

	var adopted string
	t.Run("push a new version", func(t *testing.T) {
		c := &checkout{e: e, dir: filepath.Join(t.TempDir(), "site"), app: "site"}
		cmdRunner{t: t, name: "git", env: []string{"GIT_SSH_COMMAND=" + e.sshCmd}}.run(
			"clone", "-q", "-o", "piku", e.user+"@127.0.0.1:site", c.dir)
		c.commit(map[string]string{"index.html": "site version 2\n"})
		out := c.mustPush("main")
		t.Logf("git push piku main\n%s", out)
		if !regexp.MustCompile(`Kept the existing \S+/apps/site as release \S+`).MatchString(out) {
			t.Errorf("push output:\n%s", out)
		}
		waitHTTP(t, proxyURL, "site.test", "^site version 2\n$")
		var rels []struct {
			ID      string `json:"id"`
			Runtime string `json:"runtime"`
			Live    bool   `json:"live"`
		}
		if err := json.Unmarshal([]byte(piku.run("releases", "site", "--json")), &rels); err != nil {
			t.Fatal(err)
		}
		if len(rels) != 2 || !rels[0].Live || rels[1].Runtime != "adopted" {
			t.Fatalf("releases, newest first: %+v", rels)
		}
		adopted = rels[1].ID
	})

	t.Run("roll back to the adopted release", func(t *testing.T) {
		out := piku.run("rollback", "site")
		t.Logf("piku rollback site\n%s", out)
		if !strings.Contains(out, "Release "+adopted+" of 'site' is live") {
			t.Errorf("rollback:\n%s", out)
		}
		waitHTTP(t, proxyURL, "site.test", "^site version 1\n$")
	})

	t.Run("go back", func(t *testing.T) {
		e.stopDaemon()
		out := piku.run("migrate", "back")
		t.Logf("piku migrate back\n%s", out)
		for _, want := range []string{"apps/site: the checkout of release " + adopted, "uwsgi-enabled/site_web.1.ini: restored",
			"repos/site/hooks/post-receive: restored", keysFile + ": 1 key lines run " + script + " again"} {
			if !strings.Contains(out, want) {
				t.Errorf("migrate back lacks %q:\n%s", want, out)
			}
		}
		for _, p := range kept {
			sameTree(t, p, tree(t, filepath.Join(e.root.Dir(), p)), before[p])
		}
		sameTree(t, "authorized_keys", tree(t, keysFile), keysBefore)
		if fi, err := os.Lstat(e.root.App("site")); err != nil || !fi.IsDir() {
			t.Fatalf("apps/site is not a directory: %v", err)
		}
		if _, err := os.Stat(e.root.PythonPikuDir()); !os.IsNotExist(err) {
			t.Errorf("python-piku/ is still there: %v", err)
		}
		// What Python piku's do_deploy runs in apps/APP on the next push.
		git := cmdRunner{t: t, name: "git", dir: e.root.App("site")}
		git.run("fetch", "--quiet")
		if got := strings.TrimSpace(git.run("show", "origin/main:index.html")); got != "site version 2" {
			t.Errorf("origin/main in apps/site: %q", got)
		}

		// uWSGI's emperor serves every app from the files put back.
		emperor := exec.Command(uwsgi, "--emperor", e.root.UwsgiEnabledDir())
		emperor.Dir = e.root.Dir()
		emperorLog, err := os.Create(filepath.Join(e.dir, "emperor.log"))
		if err != nil {
			t.Fatal(err)
		}
		defer emperorLog.Close()
		emperor.Stdout, emperor.Stderr = emperorLog, emperorLog
		p, err := procgroup.Start(emperor)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			// SIGINT stops uWSGI at once (SIGTERM would reload the vassals).
			_ = p.Signal(syscall.SIGINT)
			if p.Stop(30*time.Second, nil) {
				t.Log("the uWSGI emperor had to be killed")
			}
			// uWSGI's attached daemons run in sessions of their own and
			// may outlive the emperor's group.
			killLeftovers(e.root.Dir())
			if t.Failed() {
				b, _ := os.ReadFile(emperorLog.Name())
				t.Logf("uWSGI emperor log:\n%s", b)
			}
		}()
		waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/", apps[0].port), "", "^site version 1\n$")
		waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/", apps[1].port), "", "^hello from py\n$")
	})
}
