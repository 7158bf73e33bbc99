package deploy

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
)

// Hook runs piku's pre-receive hook for app: it reads the ref updates git
// gives it on in and deploys the pushed branch (the last one, when several
// are pushed at once). Deleted branches and tags deploy nothing. getenv
// gives the hook's environment (git's quarantine variables, FINGERPRINT).
// An error rejects the push.
func (d *Deployer) Hook(ctx context.Context, app string, in io.Reader, getenv func(string) string) error {
	updates, err := ParseRefUpdates(in)
	if err != nil {
		return err
	}
	var deploy *RefUpdate
	for i, u := range updates {
		d.step("%s", u.Describe())
		if u.Deploys() {
			deploy = &updates[i]
		}
	}
	if deploy == nil {
		d.step("Nothing to deploy")
		return nil
	}
	branches := 0
	for _, u := range updates {
		if u.Deploys() {
			branches++
		}
	}
	if branches > 1 {
		d.step("Several branches pushed: deploying the last one, %s", deploy.Branch())
	}
	err = d.Deploy(ctx, Push{
		App:         app,
		Revision:    deploy.New,
		Branch:      deploy.Branch(),
		Fingerprint: getenv("FINGERPRINT"),
		ClientIP:    clientIP(getenv("SSH_CLIENT")),
		Source:      SourceFromEnv(d.Root.Repo(app), getenv),
	})
	if err != nil {
		return fmt.Errorf("%w\npush rejected: the server's %s branch stays where it was", err, deploy.Branch())
	}
	if err := pointHead(d.Root.Repo(app), deploy.Branch()); err != nil {
		d.step("Warning: could not point the repository's HEAD at %s: %v", deploy.Branch(), err)
	}
	return nil
}

// clientIP is the address in SSH_CLIENT ("ADDR PORT LOCALPORT"), or "".
func clientIP(sshClient string) string {
	f := strings.Fields(sshClient)
	if len(f) == 0 || net.ParseIP(f[0]) == nil {
		return ""
	}
	return f[0]
}
