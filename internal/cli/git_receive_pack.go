package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/deploy"
	"github.com/piku/piku/internal/layout"
)

func (c *cli) gitReceivePackCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "git-receive-pack APP",
		Short:  "Receive a git push (run by ssh for `git push`): creates the app's repository on the first push",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, app, err := c.repoArg(args[0])
			if err != nil {
				return err
			}
			self, err := selfPath()
			if err != nil {
				return err
			}
			created, err := deploy.PrepareRepo(root, app, self)
			if err != nil {
				return err
			}
			if created {
				fmt.Fprintf(c.stderr, "-----> Created the repository for '%s'\n", app)
			}
			// The whole receive runs under the app's deploy lock, so a
			// second push reads the refs only once the first is done: what
			// each client is told, the branch and the live release agree.
			ctx, cancel := signalContext()
			defer cancel()
			unlock, err := deploy.Lock(ctx, root.DeployLock(app), func() {
				fmt.Fprintf(c.stderr, "-----> Another deploy of '%s' is running: waiting for it to finish\n", app)
			})
			if err != nil {
				return err
			}
			defer unlock()
			return c.runGit("receive-pack", root.Repo(app), deploy.LockHeldEnv+"=1")
		},
	}
}

// runGit runs `git SERVICE DIR`, which talks the git protocol with the
// client on stdin and stdout, with env added; its exit code becomes
// piku's.
func (c *cli) runGit(service, dir string, env ...string) error {
	git, err := exec.LookPath("git")
	if err != nil {
		return fmt.Errorf("git is not installed on the server: install it with `apt-get install git`")
	}
	cmd := exec.Command(git, service, dir)
	cmd.Env = append(gitEnv(), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = c.stdin, c.stdout, c.stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	if out, ok := c.stdout.(*os.File); ok {
		// A client that goes away while the hook runs a silent build or
		// release is noticed here: git is stopped, and the hook, which
		// dies with it, stops what it runs.
		stop := watchClient(out, func() { _ = cmd.Process.Signal(syscall.SIGTERM) })
		defer stop()
	}
	err = cmd.Wait()
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		return &ExitError{Code: xe.ExitCode()}
	}
	return err
}

// gitEnv is this process's environment for git, without the SSH command
// it was started for.
func gitEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SSH_ORIGINAL_COMMAND=") {
			env = append(env, kv)
		}
	}
	return env
}

// repoArg reads the APP of git-receive-pack and git-upload-pack, which git
// sends as a path ('app', '/app', '~/app.git').
func (c *cli) repoArg(arg string) (layout.Root, string, error) {
	app, err := layout.AppFromRepoPath(arg)
	if err != nil {
		return layout.Root{}, "", err
	}
	return c.appArg(app)
}

// selfPath is the absolute path of this binary, for the hooks.
func selfPath() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding the piku binary: %w", err)
	}
	if p, err := filepath.EvalSymlinks(self); err == nil {
		self = p
	}
	return self, nil
}

// execGit replaces this process with `git SERVICE DIR`, which talks the
// git protocol with the client on stdin and stdout.
func execGit(service, dir string) error {
	git, err := exec.LookPath("git")
	if err != nil {
		return fmt.Errorf("git is not installed on the server: install it with `apt-get install git`")
	}
	return syscall.Exec(git, []string{"git", service, dir}, gitEnv())
}
