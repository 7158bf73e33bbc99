// Package shell quotes words for a POSIX shell: the hook scripts piku
// writes, the uWSGI command lines it runs with /bin/sh -c, and the command
// lines the developer-side client sends over SSH.
package shell

import "strings"

// safe holds the bytes a word may consist of to stand unquoted: none of them
// is special to sh in any position ('=' is left out: as a first word it
// would make an assignment).
const safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:,/@+%"

// Quote returns s as one shell word: unchanged when every byte of it is
// safe, otherwise in single quotes, with each single quote in s written as
// a closing quote, an escaped quote and an opening quote.
func Quote(s string) string {
	if s != "" && strings.Trim(s, safe) == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Join quotes each word and joins them with spaces.
func Join(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = Quote(w)
	}
	return strings.Join(q, " ")
}
