package cli

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"strings"

	"github.com/piku/piku/internal/shell"
)

// The client side: on a developer's machine, inside a git checkout with a
// remote named piku (or with PIKU_SERVER set), `piku COMMAND ...` runs the
// command on the server over ssh with the app filled in, as piku's shell
// client does.

// serverOnly lists the commands that always run where piku is invoked.
var serverOnly = map[string]bool{
	"daemon": true, "service": true, "setup": true, "setup:ssh": true, "init": true,
	"git-receive-pack": true, "git-upload-pack": true, "git-hook": true,
	"help": true, "completion": true, "--help": true, "-h": true, "--version": true, "version": true,
}

// takesApp lists the commands whose first argument is the app.
var takesApp = map[string]bool{
	"config": true, "config:get": true, "config:set": true, "config:unset": true, "config:live": true,
	"deploy": true, "destroy": true, "logs": true, "ps": true, "ps:scale": true, "restart": true,
	"stop": true, "start": true, "run": true, "releases": true, "rollback": true,
}

// target is where a client command goes.
type target struct {
	host string // [user@]host
	port string
	app  string
}

// clientTarget decides whether args should be forwarded to a server and
// where. It returns nil for local execution. Flags it understands (--remote
// NAME, --local) are removed from args.
func clientTarget(args []string, getenv func(string) string, gitRemote func(name string) (string, error)) (*target, []string, error) {
	remote, local := "", false
	var rest []string
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--local":
			local = true
		case args[i] == "--root" || strings.HasPrefix(args[i], "--root="):
			local = true // an explicit PIKU_ROOT means this machine
			rest = append(rest, args[i])
		case args[i] == "--remote" && i+1 < len(args):
			remote = args[i+1]
			i++
		case strings.HasPrefix(args[i], "--remote="):
			remote = strings.TrimPrefix(args[i], "--remote=")
		default:
			rest = append(rest, args[i])
		}
		if args[i] == "--" {
			rest = append(rest, args[i+1:]...)
			break
		}
	}
	if local || len(rest) == 0 || serverOnly[rest[0]] {
		return nil, args, nil
	}
	var t target
	if s := getenv("PIKU_SERVER"); s != "" && remote == "" {
		var err error
		if t, err = checkTarget("PIKU_SERVER", target{host: s, app: getenv("PIKU_APP")}); err != nil {
			return nil, nil, err
		}
	} else {
		name := remote
		if name == "" {
			name = "piku"
		}
		u, err := gitRemote(name)
		if err != nil || u == "" {
			if remote != "" {
				return nil, nil, fmt.Errorf("no git remote named %q here (add one: git remote add %s piku@server:app)", remote, remote)
			}
			return nil, args, nil // not in a checkout with a piku remote: run locally
		}
		t, err = parseRemote(u)
		if err != nil {
			return nil, nil, fmt.Errorf("git remote %q: %w", name, err)
		}
		if a := getenv("PIKU_APP"); a != "" {
			t.app = a
		}
	}
	if takesApp[rest[0]] {
		if t.app == "" {
			return nil, nil, errors.New("no app to act on: set PIKU_APP or use a remote like piku@server:app")
		}
		rest = append([]string{rest[0], t.app}, rest[1:]...)
	}
	return &t, rest, nil
}

// parseRemote reads piku@server:app, ssh://piku@server[:port]/app and
// server:app forms.
func parseRemote(s string) (target, error) {
	if strings.HasPrefix(s, "ssh://") {
		u, err := url.Parse(s)
		if err != nil {
			return target{}, err
		}
		host := u.Hostname()
		if u.User != nil {
			host = u.User.Username() + "@" + host
		}
		return checkTarget(s, target{host: host, port: u.Port(), app: appFromPath(u.Path)})
	}
	host, path, ok := strings.Cut(s, ":")
	if !ok || host == "" || strings.Contains(host, "/") {
		return target{}, fmt.Errorf("%q is not an SSH remote like piku@server:app", s)
	}
	return checkTarget(s, target{host: host, app: appFromPath(path)})
}

// checkTarget refuses what ssh would take for something else than a host
// and port, as git does: a host starting with '-' would be an option.
func checkTarget(remote string, t target) (target, error) {
	if t.host == "" || strings.HasPrefix(t.host, "-") || strings.ContainsAny(t.host, " \t\n\r\x00") {
		return target{}, fmt.Errorf("remote %q: %q is not a host name ssh can be given", remote, t.host)
	}
	if strings.Trim(t.port, "0123456789") != "" {
		return target{}, fmt.Errorf("remote %q: port %q is not a number", remote, t.port)
	}
	return t, nil
}

func appFromPath(p string) string {
	p = strings.TrimPrefix(p, "~/")
	p = strings.Trim(p, "/")
	return strings.TrimSuffix(p, ".git")
}

// runRemote runs args on t over ssh, with the streams passed through, and
// returns ssh's exit code (the remote command's).
func runRemote(t *target, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	sshArgs := []string{}
	if f, ok := stdin.(*os.File); ok && isTerminal(f) && (args[0] == "run" || args[0] == "logs" || liveTop(args)) {
		sshArgs = append(sshArgs, "-t")
	}
	if t.port != "" {
		sshArgs = append(sshArgs, "-p", t.port)
	}
	sshArgs = append(sshArgs, t.host, shell.Join(args))
	var cmd *exec.Cmd
	if custom := getenv("PIKU_SSH"); custom != "" {
		// Like GIT_SSH_COMMAND: a command line with its own options.
		cmd = exec.Command("/bin/sh", append([]string{"-c", custom + ` "$@"`, "ssh"}, sshArgs...)...)
	} else if custom := getenv("GIT_SSH_COMMAND"); custom != "" {
		cmd = exec.Command("/bin/sh", append([]string{"-c", custom + ` "$@"`, "ssh"}, sshArgs...)...)
	} else {
		cmd = exec.Command("ssh", sshArgs...)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	err := cmd.Run()
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		return xe.ExitCode()
	}
	if err != nil {
		fmt.Fprintln(stderr, "piku: running ssh:", err)
		return 1
	}
	return 0
}

// liveTop reports whether args run `piku top` on the screen (not --once
// or --json), which reads keys from a terminal.
func liveTop(args []string) bool {
	if args[0] != "top" {
		return false
	}
	for _, a := range args[1:] {
		if a == "--once" || a == "--json" || strings.HasPrefix(a, "--once=") || strings.HasPrefix(a, "--json=") {
			return false
		}
	}
	return true
}

// gitRemoteURL returns the URL of the git remote name of the checkout in
// the current directory.
func gitRemoteURL(name string) (string, error) {
	out, err := exec.Command("git", "config", "--get", "remote."+name+".url").Output()
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}
