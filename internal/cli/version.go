package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// VersionInfo is what `piku version --json` prints (see docs/JSON.md).
type VersionInfo struct {
	Version string `json:"version"`          // the release, "dev" for a build from source
	Commit  string `json:"commit,omitempty"` // the source revision, when the build recorded it
	Go      string `json:"go"`               // the Go toolchain that built piku
	OS      string `json:"os"`
	Arch    string `json:"arch"`
}

func versionInfo() VersionInfo {
	v := VersionInfo{Version: Version, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v.Commit = s.Value
			}
		}
	}
	return v
}

func (c *cli) versionCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print piku's version (--json: with the commit, Go version and platform)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := versionInfo()
			if asJSON {
				return writeJSON(c.stdout, v)
			}
			fmt.Fprintf(c.stdout, "piku %s (%s, %s/%s)\n", v.Version, v.Go, v.OS, v.Arch)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the version as JSON")
	return cmd
}

// writeJSON prints v as indented JSON, the form of every --json output but
// the streamed ones.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
