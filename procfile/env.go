package procfile

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Env is an ordered set of environment variables: keys keep the order they
// were first set in. The zero value is empty and ready to use.
type Env struct {
	keys []string
	vals map[string]string
}

// NewEnv returns an empty Env.
func NewEnv() *Env { return &Env{} }

// Get returns the value of key and whether it is set.
func (e *Env) Get(key string) (string, bool) {
	v, ok := e.vals[key]
	return v, ok
}

// Set sets key to value. A new key goes last; an existing one keeps its
// place.
func (e *Env) Set(key, value string) {
	if e.vals == nil {
		e.vals = map[string]string{}
	}
	if _, ok := e.vals[key]; !ok {
		e.keys = append(e.keys, key)
	}
	e.vals[key] = value
}

// Unset removes key.
func (e *Env) Unset(key string) {
	if _, ok := e.vals[key]; !ok {
		return
	}
	delete(e.vals, key)
	for i, k := range e.keys {
		if k == key {
			e.keys = append(e.keys[:i:i], e.keys[i+1:]...)
			break
		}
	}
}

// Keys returns the keys in order.
func (e *Env) Keys() []string { return append([]string(nil), e.keys...) }

// Len is the number of keys.
func (e *Env) Len() int { return len(e.keys) }

// Map returns a copy of the variables as a map.
func (e *Env) Map() map[string]string {
	m := make(map[string]string, len(e.keys))
	for _, k := range e.keys {
		m[k] = e.vals[k]
	}
	return m
}

// Environ returns the variables as "KEY=VALUE" strings in order, the form
// os/exec.Cmd.Env takes.
func (e *Env) Environ() []string {
	out := make([]string, 0, len(e.keys))
	for _, k := range e.keys {
		out = append(out, k+"="+e.vals[k])
	}
	return out
}

// Merge sets every variable of o in e, in o's order.
func (e *Env) Merge(o *Env) {
	for _, k := range o.keys {
		e.Set(k, o.vals[k])
	}
}

// ValidKey reports whether key is a valid variable name:
// [A-Za-z_][A-Za-z0-9_]*.
func ValidKey(key string) bool {
	if key == "" {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ParseEnv reads an ENV file. file names the input in errors. lookup gives
// the variables a value may refer to that the file does not define (the
// bootstrap environment: APP, HOME, PATH...); it may be nil.
//
// The format is piku's KEY=VALUE per line, with the common dotenv
// extensions:
//
//   - blank lines and lines starting with '#' are ignored; "export KEY=V"
//     is read as "KEY=V"; spaces around the key and '=' are ignored;
//   - keys match [A-Za-z_][A-Za-z0-9_]*;
//   - an unquoted value runs to the end of the line, trailing spaces
//     trimmed. A '#' inside it is part of the value, as in piku
//     ("URL=http://x/#top" keeps its fragment): there are no inline
//     comments after unquoted values;
//   - 'single quotes' keep everything literally, newlines included;
//   - "double quotes" may span lines and understand \" \\ and \$ (any other
//     backslash is kept as is);
//   - after a closing quote only spaces and a "# comment" may follow;
//   - in unquoted and double-quoted values $VAR and ${VAR} expand to a key
//     defined earlier in the file, else to lookup's value; a reference to
//     an unknown variable is kept as written, as in piku (so a password
//     like pa$word survives); \$ is a literal dollar, and a '$' not
//     followed by a name is kept as is.
//
// The difference from Python piku, which split each line at the first '='
// and expanded known variables: quotes there were part of the value. Use
// single quotes or \$ for a literal dollar before a known name.
//
// A line that is not KEY=VALUE, a bad key, an unterminated quote or "${" is
// an *Error.
func ParseEnv(r io.Reader, file string, lookup func(string) (string, bool)) (*Env, error) {
	src, err := readAll(r, file)
	if err != nil {
		return nil, err
	}
	p := &envParser{src: src, file: file, line: 1, lookup: lookup, env: &Env{}}
	if err := p.parse(); err != nil {
		return nil, err
	}
	return p.env, nil
}

type envParser struct {
	src    string
	pos    int
	file   string
	line   int
	lookup func(string) (string, bool)
	env    *Env
	key    string // the key whose value is being read
	total  int    // bytes of the keys and values read so far
}

func (p *envParser) errorf(line int, format string, args ...any) error {
	return errorf(p.file, line, format, args...)
}

func (p *envParser) tooLong(line int) error {
	return p.errorf(line, "%s is longer than %d bytes after expansion", p.key, MaxValue)
}

// restOfLine returns the text up to the end of the current line and moves
// past the line ending.
func (p *envParser) restOfLine() string {
	i := strings.IndexByte(p.src[p.pos:], '\n')
	var s string
	if i < 0 {
		s, p.pos = p.src[p.pos:], len(p.src)
	} else {
		s, p.pos = p.src[p.pos:p.pos+i], p.pos+i+1
		p.line++
	}
	return s
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v' }

func (p *envParser) skipBlanks() {
	for p.pos < len(p.src) && isBlank(p.src[p.pos]) {
		p.pos++
	}
}

func (p *envParser) parse() error {
	for p.pos < len(p.src) {
		start := p.line
		p.skipBlanks()
		if p.pos == len(p.src) {
			break
		}
		if c := p.src[p.pos]; c == '\n' || c == '#' {
			p.restOfLine()
			continue
		}
		// KEY (after an optional "export ").
		rest := p.src[p.pos:]
		if strings.HasPrefix(rest, "export") && len(rest) > 6 && (rest[6] == ' ' || rest[6] == '\t') {
			p.pos += 6
			p.skipBlanks()
		}
		keyStart := p.pos
		for p.pos < len(p.src) && p.src[p.pos] != '=' && p.src[p.pos] != '\n' {
			p.pos++
		}
		if p.pos == len(p.src) || p.src[p.pos] != '=' {
			return p.errorf(start, "missing '=' (expected KEY=VALUE)")
		}
		key := strings.TrimRight(p.src[keyStart:p.pos], " \t\r\f\v")
		if !ValidKey(key) {
			return p.errorf(start, "invalid key %q: use letters, digits and '_', not starting with a digit", key)
		}
		p.pos++ // '='
		p.skipBlanks()
		p.key = key
		val, err := p.value(start)
		if err != nil {
			return err
		}
		if len(val) > MaxValue {
			return p.tooLong(start)
		}
		if p.total += len(key) + len(val) + 2; p.total > MaxEnv {
			return p.errorf(start, "the variables so far are larger than %d bytes", MaxEnv)
		}
		p.env.Set(key, val)
	}
	return nil
}

// value reads the value after '=' and the rest of its (last) line.
func (p *envParser) value(start int) (string, error) {
	if p.pos == len(p.src) {
		return "", nil
	}
	switch p.src[p.pos] {
	case '\'':
		p.pos++
		end := strings.IndexByte(p.src[p.pos:], '\'')
		if end < 0 {
			return "", p.errorf(start, "unterminated single quote")
		}
		v := p.src[p.pos : p.pos+end]
		p.line += strings.Count(v, "\n")
		p.pos += end + 1
		return v, p.afterQuote()
	case '"':
		p.pos++
		var b strings.Builder
		for {
			if p.pos == len(p.src) {
				return "", p.errorf(start, "unterminated double quote")
			}
			c := p.src[p.pos]
			switch {
			case c == '"':
				p.pos++
				return b.String(), p.afterQuote()
			case c == '\\' && p.pos+1 < len(p.src) && strings.IndexByte(`"\$`, p.src[p.pos+1]) >= 0:
				b.WriteByte(p.src[p.pos+1])
				p.pos += 2
			case c == '$':
				if err := p.expand(&b, start); err != nil {
					return "", err
				}
			default:
				if c == '\n' {
					p.line++
				}
				b.WriteByte(c)
				p.pos++
			}
		}
	}
	raw := strings.TrimRight(p.restOfLine(), " \t\r\f\v")
	sub := &envParser{src: raw, file: p.file, line: start, lookup: p.lookup, env: p.env, key: p.key}
	var b strings.Builder
	for sub.pos < len(raw) {
		c := raw[sub.pos]
		switch {
		case c == '\\' && sub.pos+1 < len(raw) && raw[sub.pos+1] == '$':
			b.WriteByte('$')
			sub.pos += 2
		case c == '$':
			if err := sub.expand(&b, start); err != nil {
				return "", err
			}
		default:
			b.WriteByte(c)
			sub.pos++
		}
	}
	return b.String(), nil
}

// afterQuote checks that only blanks and a comment follow a closing quote.
func (p *envParser) afterQuote() error {
	line := p.line
	rest := strings.TrimLeft(p.restOfLine(), " \t\r\f\v")
	if rest != "" && rest[0] != '#' {
		return p.errorf(line, "unexpected text %q after the closing quote", rest)
	}
	return nil
}

// expand reads a $NAME or ${NAME} reference at p.pos and writes its value.
func (p *envParser) expand(b *strings.Builder, start int) error {
	start0 := p.pos
	p.pos++ // '$'
	if p.pos < len(p.src) && p.src[p.pos] == '{' {
		end := strings.IndexByte(p.src[p.pos:], '}')
		if end < 0 {
			return p.errorf(start, "unterminated \"${\"")
		}
		name := p.src[p.pos+1 : p.pos+end]
		if !ValidKey(name) {
			return p.errorf(start, "invalid variable name %q in \"${...}\"", name)
		}
		p.pos += end + 1
		if v, ok := p.resolve(name); ok {
			if b.Len()+len(v) > MaxValue {
				return p.tooLong(start)
			}
			b.WriteString(v)
		} else {
			b.WriteString(p.src[start0:p.pos])
		}
		return nil
	}
	n := p.pos
	for n < len(p.src) && (p.src[n] == '_' || p.src[n] >= 'a' && p.src[n] <= 'z' || p.src[n] >= 'A' && p.src[n] <= 'Z' ||
		n > p.pos && p.src[n] >= '0' && p.src[n] <= '9') {
		n++
	}
	if n == p.pos {
		b.WriteByte('$')
		return nil
	}
	if v, ok := p.resolve(p.src[p.pos:n]); ok {
		if b.Len()+len(v) > MaxValue {
			return p.tooLong(start)
		}
		b.WriteString(v)
	} else {
		b.WriteString(p.src[start0:n])
	}
	p.pos = n
	return nil
}

// resolve looks name up in the keys read so far, then in the bootstrap
// environment. An unknown name is reported as such and its reference is
// kept as written, as piku does, so a value like pa$word survives.
func (p *envParser) resolve(name string) (string, bool) {
	if v, ok := p.env.Get(name); ok {
		return v, true
	}
	if p.lookup != nil {
		if v, ok := p.lookup(name); ok {
			return v, true
		}
	}
	return "", false
}

// WriteEnv writes e in a form ParseEnv reads back to the same keys, order
// and values: plain KEY=VALUE when the value needs no quoting (what piku
// writes), else single quotes, else double quotes with \" \\ \$ escaped.
// Values may hold newlines. A key that is not valid (see ValidKey) is an
// error and nothing more is written.
func WriteEnv(w io.Writer, e *Env) error {
	bw := bufio.NewWriter(w)
	for _, k := range e.keys {
		if !ValidKey(k) {
			return fmt.Errorf("writing env: invalid key %q", k)
		}
		bw.WriteString(k)
		bw.WriteByte('=')
		bw.WriteString(quoteEnvValue(e.vals[k]))
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing env: %w", err)
	}
	return nil
}

func quoteEnvValue(v string) string {
	if plainEnvValue(v) {
		return v
	}
	if !strings.Contains(v, "'") {
		return "'" + v + "'"
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '"' || c == '\\' || c == '$' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
	return b.String()
}

// plainEnvValue reports whether v reads back unchanged without quotes.
func plainEnvValue(v string) bool {
	if v == "" {
		return true
	}
	if v[0] == '\'' || v[0] == '"' || isBlank(v[0]) || isBlank(v[len(v)-1]) {
		return false
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '$' || c == '\\' || c == '\n' || c < ' ' || c == 0x7f:
			return false
		}
	}
	return true
}
