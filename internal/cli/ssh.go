package cli

import (
	"fmt"
	"strings"
)

// sshRefused lists the commands a key holder may not run through the SSH
// forced command: they manage the server itself, not apps.
var sshRefused = map[string]bool{"daemon": true, "service": true, "git-hook": true, "setup": true, "migrate": true}

// sshCommand splits the command line an SSH client sent (as sshd hands it
// over in SSH_ORIGINAL_COMMAND) into words the way a POSIX shell would split
// a line of plain words and quotes, without expanding anything: no
// variables, globs, substitutions or redirections. Shell operators outside
// quotes are refused, so nothing meant for a shell slips through.
func sshCommand(line string) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool
	)
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case ch == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("refusing command %q: unterminated quote", line)
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case ch == '"':
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) && strings.IndexByte("\"\\$`", line[i+1]) >= 0 {
					i++
				} else if line[i] == '$' || line[i] == '`' {
					return nil, fmt.Errorf("refusing command %q: shell expansions are not allowed", line)
				}
				cur.WriteByte(line[i])
			}
			if i >= len(line) {
				return nil, fmt.Errorf("refusing command %q: unterminated quote", line)
			}
			inWord = true
		case ch == '\\':
			if i+1 < len(line) {
				i++
				cur.WriteByte(line[i])
			}
			inWord = true
		case strings.IndexByte(";&|<>`$(){}*?[]~#!", ch) >= 0 && !(ch == '~' && inWord) && !(ch == '#' && inWord):
			return nil, fmt.Errorf("refusing command %q: shell syntax is not allowed", line)
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, nil
	}
	if sshRefused[words[0]] {
		return nil, fmt.Errorf("refusing %q over SSH: it manages the server; run it on the server itself", words[0])
	}
	return words, nil
}
