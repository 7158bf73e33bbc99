//go:build !linux

package isolation

import "github.com/piku/piku/internal/layout"

// ConfineSubcommand is the hidden piku subcommand that confines itself to
// an app and then execs the command that follows "--".
const ConfineSubcommand = "__confine"

// LandlockABI is 0: only Linux has Landlock.
func LandlockABI() (int, string) { return 0, "Landlock is Linux's" }

// ConfineEnv is empty: there is nothing to confine with.
func ConfineEnv(layout.Root, string, func(string) (string, bool)) []string { return nil }

// ConfineFromEnv does nothing.
func ConfineFromEnv() (int, error) { return 0, nil }
