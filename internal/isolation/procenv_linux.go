package isolation

import (
	"strconv"

	"github.com/piku/piku/internal/procgroup"
)

// ProcessEnv is what the environment of a command of the app carries for
// its prelude (procgroup.Start, procgroup.Prelude) to set l's limits per
// process before it runs anything: the core file size always, and the
// nice value kind's processes start with, if the app asked for one ("" is
// the value for every kind: builds and release commands).
func (l Limits) ProcessEnv(kind string) []string {
	core := strconv.FormatInt(l.CoreMax, 10)
	if l.CoreMax == CoreUnlimited {
		core = "unlimited"
	}
	env := []string{procgroup.CoreVar + "=" + core}
	n, ok := l.Nice[""]
	if kind != "" {
		n, ok = l.NiceOf(kind)
	}
	if ok {
		env = append(env, procgroup.NiceVar+"="+strconv.Itoa(n))
	}
	return env
}
