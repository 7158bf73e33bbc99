package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/piku/piku/internal/appconfig"
	"github.com/piku/piku/internal/layout"
	"github.com/piku/piku/procfile"
)

func (c *cli) psScaleCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "ps:scale APP KIND=COUNT...",
		Short: "Change how many instances of each kind run; the others are not touched",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, app, err := c.deployedApp(args[0])
			if err != nil {
				return err
			}
			return c.changeFiles(root, app, []string{root.ScalingFile(app)}, false, "the new counts are saved in SCALING", func() error {
				return c.scale(root, app, args[1:])
			})
		},
	}
}

// scale writes the new counts of args (KIND=COUNT) to app's SCALING.
func (c *cli) scale(root layout.Root, app string, args []string) error {
	a, err := appconfig.Load(root, app)
	if err != nil {
		return err
	}
	counts, err := appconfig.ReadScaling(root, app)
	if err != nil {
		return err
	}
	for k, n := range a.Scaling {
		if _, ok := counts[k]; !ok {
			counts[k] = n
		}
	}
	var changed []string
	for _, arg := range args {
		kind, num, ok := strings.Cut(arg, "=")
		if !ok {
			return fmt.Errorf("%q is not KIND=COUNT", arg)
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 0 || n > procfile.MaxScale {
			return fmt.Errorf("%q: the count must be a whole number from 0 to %d", arg, procfile.MaxScale)
		}
		if err := a.CheckKind(kind); err != nil {
			return err
		}
		counts[kind] = n
		changed = append(changed, fmt.Sprintf("%s:%d", kind, n))
	}
	if err := appconfig.CheckInstances(root, app, counts); err != nil {
		return err
	}
	if err := appconfig.WriteScaling(root, app, counts); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "-----> Scaling %s processes: %s\n", app, strings.Join(changed, " "))
	return nil
}
