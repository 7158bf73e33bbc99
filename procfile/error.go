package procfile

import "fmt"

// Error is a parse error in a Procfile, ENV or SCALING file.
type Error struct {
	// File is the name the caller gave for the input ("Procfile",
	// "envs/blog/ENV"). It may be empty.
	File string
	// Line is the 1-based line the problem was found on.
	Line int
	// Msg says what is wrong, without file or line.
	Msg string
}

// Error formats the error as "FILE line N: MSG".
func (e *Error) Error() string {
	if e.File == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("%s line %d: %s", e.File, e.Line, e.Msg)
}

func errorf(file string, line int, format string, args ...any) *Error {
	return &Error{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// where formats a file and line for warnings, in the same form as Error.
func where(file string, line int) string {
	if file == "" {
		return fmt.Sprintf("line %d", line)
	}
	return fmt.Sprintf("%s line %d", file, line)
}
