// Package cli holds piku's command line: one cobra command per file, named
// after the command. Commands parse their arguments, call into the other
// packages and print; they never print errors themselves: Main does, on
// stderr, and turns them into the exit code.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
)

// Version is piku's version, set at build time with
// -ldflags "-X github.com/piku/piku/internal/cli.Version=...".
var Version = "dev"

// ExitError carries a process exit code through cobra (for `piku run` and
// the commands forwarded over SSH). Its message, if any, is printed.
type ExitError struct {
	Code int
	Msg  string
}

func (e *ExitError) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// Main runs piku with args (without the program name) and returns the exit
// code.
func Main(args []string) int {
	return run(args, os.Stdin, os.Stdout, os.Stderr)
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// Behind an SSH forced command, the client's command line comes in
	// SSH_ORIGINAL_COMMAND; it is parsed here, never by a shell.
	if orig, ok := os.LookupEnv("SSH_ORIGINAL_COMMAND"); ok {
		parsed, err := sshCommand(orig)
		if err != nil {
			fmt.Fprintln(stderr, "piku:", err)
			return 1
		}
		args = parsed
	} else {
		// On a developer's machine, forward to the server named by the
		// checkout's piku remote.
		t, rest, err := clientTarget(args, os.Getenv, gitRemoteURL)
		if err != nil {
			fmt.Fprintln(stderr, "piku:", err)
			return 1
		}
		if t != nil {
			return runRemote(t, rest, stdin, stdout, stderr, os.Getenv)
		}
		args = rest
	}
	c := newCLI(stdin, stdout, stderr)
	root := c.rootCommand()
	if _, ok := os.LookupEnv("SSH_ORIGINAL_COMMAND"); ok {
		if err := refuseGlobalFlags(args, root.PersistentFlags()); err != nil {
			fmt.Fprintln(stderr, "piku:", err)
			return 1
		}
	}
	root.SetArgs(args)
	return exitCode(root.Execute(), stderr)
}

// exitCode prints err, if it has something to say, and returns the exit
// code for it.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Msg != "" {
			fmt.Fprintln(stderr, "piku:", ee.Msg)
		}
		return ee.Code
	}
	// A command whose child failed (git, a build tool) says why in its
	// error; only `piku run` and forwarded commands exit silently, through
	// ExitError.
	if xe, ok := err.(*exec.ExitError); ok {
		return xe.ExitCode()
	}
	fmt.Fprintln(stderr, "piku:", err)
	return 1
}
