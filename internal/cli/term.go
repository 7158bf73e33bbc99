package cli

import (
	"io"
	"os"
	"strings"
)

// Colour and transient progress lines are for people at a terminal: they
// are written only when the stream is one, and colour not when NO_COLOR is
// set to anything (https://no-color.org) or TERM is dumb.

// ANSI styles. Every colour is as long as the others, so a coloured column
// stays aligned in a tabwriter table.
const (
	sgrReset  = "\x1b[0m"
	sgrGreen  = "\x1b[32m"
	sgrYellow = "\x1b[33m"
	sgrRed    = "\x1b[31m"
	sgrPlain  = "\x1b[39m" // the default colour: pads an uncoloured cell
	sgrBold   = "\x1b[1m"
	sgrDim    = "\x1b[2m"
)

// isTerminalWriter reports whether w is a terminal.
func isTerminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}

// colourOn reports whether output to w may be coloured.
func colourOn(w io.Writer) bool {
	return isTerminalWriter(w) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
}

// painter colours text, or leaves it alone when colour is off.
type painter bool

func (p painter) paint(sgr, s string) string {
	if !p {
		return s
	}
	return sgr + s + sgrReset
}

// stateColour is the colour of an instance state in `piku ps`.
func stateColour(state string) string {
	switch state {
	case "running":
		return sgrGreen
	case "starting", "backoff", "stopping":
		return sgrYellow
	case "failed", "crash-looping", "exited":
		return sgrRed
	}
	return sgrPlain
}

// streamOut returns where an operation's progress goes: stdout itself, or,
// on a terminal, a writer that also shows transient progress lines and
// puts the ----> headings in bold (with colour on).
func (c *cli) streamOut() io.Writer {
	if !isTerminalWriter(c.stdout) {
		return c.stdout
	}
	return &termWriter{w: c.stdout, p: painter(colourOn(c.stdout))}
}

// termWriter is an operation's output on a terminal. The stream writes it
// a line at a time.
type termWriter struct {
	w io.Writer
	p painter
}

func (t *termWriter) Write(b []byte) (int, error) {
	if s := string(b); bool(t.p) && strings.HasPrefix(s, "----->") {
		if _, err := io.WriteString(t.w, t.p.paint(sgrBold, strings.TrimSuffix(s, "\n"))+"\n"); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return t.w.Write(b)
}

// Progress shows a transient progress line, dimmed with colour on.
func (t *termWriter) Progress(msg string) {
	_, _ = io.WriteString(t.w, t.p.paint(sgrDim, msg)+"\n")
}
