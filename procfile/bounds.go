package procfile

// Bounds on what one app's files may ask for. They keep a hostile or
// mistaken file from making the daemon, which runs every app, grow without
// limit: a push beyond them is refused with the file and line, before
// anything runs.
const (
	// MaxValue is the longest value of one ENV variable, after expansion:
	// 128 KiB, the most Linux passes to a process in one "KEY=VALUE"
	// string (MAX_ARG_STRLEN); "A=$A$A" repeated stops here instead of
	// doubling the daemon's memory with every line.
	MaxValue = 128 << 10
	// MaxEnv bounds the keys and values of one ENV file together: 1 MiB,
	// half of what Linux lets a process start with by default (ARG_MAX).
	MaxEnv = 1 << 20
	// MaxKinds is the most entries (process kinds, cron, release...) a
	// Procfile may have.
	MaxKinds = 64
	// MaxScale is the most instances of one kind (SCALING, ps:scale).
	MaxScale = 64
	// MaxInstances is the most long-running instances of one app, all
	// kinds together.
	MaxInstances = 256
)
