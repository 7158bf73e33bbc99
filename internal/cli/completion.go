package cli

import (
	"context"
	"slices"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/appconfig"
)

func (c *cli) completionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print the shell completion script (app names and process kinds come from the daemon)",
		Long: `Print the completion script for bash, zsh or fish. App names and process
kinds are completed from the daemon (from the files under PIKU_ROOT when it
is not running). To load it:

  bash:  source <(piku completion bash)
  zsh:   piku completion zsh > "${fpath[1]}/_piku"
  fish:  piku completion fish > ~/.config/fish/completions/piku.fish`,
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		ValidArgs: []string{"bash", "zsh", "fish"},
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(c.stdout, true)
			case "zsh":
				return root.GenZshCompletion(c.stdout)
			default:
				return root.GenFishCompletion(c.stdout, true)
			}
		},
	}
}

// completeArgs sets how the arguments of the app commands are completed:
// the first is an app; the kind of restart and logs, and the KIND= of
// ps:scale, are the app's process kinds.
func (c *cli) completeArgs(root *cobra.Command) {
	for _, cmd := range root.Commands() {
		if !takesApp[cmd.Name()] {
			continue
		}
		name := cmd.Name()
		cmd.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			switch {
			case len(args) == 0:
				return c.appNames(), cobra.ShellCompDirectiveNoFileComp
			case name == "ps:scale":
				var out []cobra.Completion
				for _, k := range c.kinds(args[0]) {
					out = append(out, k+"=")
				}
				return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
			case len(args) == 1 && (name == "restart" || name == "logs"):
				return c.kinds(args[0]), cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
	}
}

// appNames returns the daemon's apps, or the apps under PIKU_ROOT when the
// daemon does not answer.
func (c *cli) appNames() []string {
	root, err := c.root()
	if err != nil {
		return nil
	}
	if st, err := c.client(root).Apps(context.Background()); err == nil {
		names := make([]string, 0, len(st))
		for _, a := range st {
			names = append(names, a.App)
		}
		return names
	}
	names, _ := root.Apps()
	return names
}

// kinds returns app's process kinds: those the daemon runs and those of
// its Procfile (a kind scaled to 0 runs nothing).
func (c *cli) kinds(app string) []string {
	root, app, err := c.appArg(app)
	if err != nil {
		return nil
	}
	var kinds []string
	if st, err := c.client(root).Status(context.Background(), app); err == nil {
		for _, in := range st.Instances {
			kinds = append(kinds, in.Kind)
		}
	}
	if a, err := appconfig.Load(root, app); err == nil {
		kinds = append(kinds, a.Kinds()...)
	}
	slices.Sort(kinds)
	return slices.Compact(kinds)
}
