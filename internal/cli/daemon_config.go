package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// checkConfigKeys refuses keys of the daemon's config file that name no
// flag of the daemon, so a typo is not silently ignored. For YAML files the
// error gives the key's line.
func checkConfigKeys(path string, flags *pflag.FlagSet) error {
	var known []string
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" {
			known = append(known, f.Name)
		}
	})
	sort.Strings(known)
	isKnown := func(k string) bool { return k != "help" && flags.Lookup(k) != nil }
	hint := "the keys are named like the daemon's flags: " + strings.Join(known, ", ")

	ext := strings.ToLower(filepath.Ext(path))
	if ext == ".yaml" || ext == ".yml" {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
			return nil // empty, or not a mapping: viper has read it already
		}
		m := doc.Content[0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			if k := m.Content[i]; !isKnown(strings.ToLower(k.Value)) {
				return fmt.Errorf("%s line %d: unknown key %q (%s)", path, k.Line, k.Value, hint)
			}
		}
		return nil
	}
	fv := viper.New()
	fv.SetConfigFile(path)
	if err := fv.ReadInConfig(); err != nil {
		return err
	}
	for _, k := range fv.AllKeys() {
		if !isKnown(k) {
			return fmt.Errorf("%s: unknown key %q (%s)", path, k, hint)
		}
	}
	return nil
}
