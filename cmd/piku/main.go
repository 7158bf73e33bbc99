// Command piku is a git-push PaaS for small servers in one binary: the
// daemon (supervisor, reverse proxy, control API), the server-side commands
// run over SSH, and the developer-side client.
package main

import (
	"os"

	"github.com/piku/piku/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
