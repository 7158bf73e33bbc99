package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"
)

const sampleProcfile = `# Procfile: the processes piku runs for this app, one "kind: command" per line.
#
# web: a process that serves HTTP on $PORT (piku gives every instance its own)
web: python3 -m http.server $PORT --bind 127.0.0.1
#
# wsgi: a Python WSGI app served by uWSGI (module:callable); replaces web
# wsgi: app:application
#
# static: a folder the proxy serves as a whole site
# static: public
#
# Any other name is a background worker (scale with: piku ps:scale worker=2)
# worker: python3 worker.py
#
# cronNAME: "minute hour day-of-month month day-of-week command"
# cron1: */10 * * * * python3 cleanup.py
#
# release runs after the build and before going live; preflight before the build.
# release: python3 manage.py migrate
`

const sampleENV = `# ENV: settings for this app (piku config:set overrides them on the server).
# KEY=VALUE, # comments, quotes, and $VAR or ${VAR} expansion.
#
# Host names the proxy routes to this app (comma or space separated):
# NGINX_SERVER_NAME=example.com,www.example.com
#
# Redirect HTTP to HTTPS:
# NGINX_HTTPS_ONLY=true
#
# Serve folders as static files: /url:path,...
# NGINX_STATIC_PATHS=/static:static,/media:media
#
# Traffic switches to new instances once this path answers below 500:
# PIKU_HEALTHCHECK_PATH=/health
`

func (c *cli) initCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Write a commented sample Procfile and ENV in the current directory (existing files are kept)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, f := range []struct{ name, text string }{{"Procfile", sampleProcfile}, {"ENV", sampleENV}} {
				file, err := os.OpenFile(f.name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
				if errors.Is(err, fs.ErrExist) {
					fmt.Fprintf(c.stdout, "%s already exists; leaving it as it is\n", f.name)
					continue
				}
				if err != nil {
					return err
				}
				_, err = file.WriteString(f.text)
				if cerr := file.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "Wrote a sample %s\n", f.name)
			}
			return nil
		},
	}
}
