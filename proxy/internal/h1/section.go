package h1

import (
	"bufio"
	"errors"
	"io"
	"strings"
)

// ReadSection reads a header section from br, up to and with its empty
// line.
func ReadSection(br *bufio.Reader, limit int) (string, error) {
	for {
		buf, _ := br.Peek(br.Buffered())
		// An empty section, as trailers mostly are.
		if len(buf) > 0 && buf[0] == '\n' {
			br.Discard(1)
			return "\n", nil
		}
		if len(buf) > 1 && buf[0] == '\r' && buf[1] == '\n' {
			br.Discard(2)
			return "\r\n", nil
		}
		if end := HeaderEnd(buf); end > 0 {
			s := string(buf[:end])
			br.Discard(end)
			return s, nil
		}
		if len(buf) > limit {
			return "", ErrHeaderTooLarge
		}
		if len(buf) == br.Size() {
			return ReadLongSection(br, limit)
		}
		if _, err := br.Peek(len(buf) + 1); err != nil && br.Buffered() <= len(buf) {
			if err == io.EOF && len(buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
}

// ErrHeaderTooLarge is returned when a header section is longer than its
// limit.
var ErrHeaderTooLarge = errors.New("header section too large")

// ReadLongSection reads a header section longer than br's buffer.
func ReadLongSection(br *bufio.Reader, limit int) (string, error) {
	var b []byte
	continued := false
	for {
		line, err := br.ReadSlice('\n')
		b = append(b, line...)
		if len(b) > limit {
			return "", ErrHeaderTooLarge
		}
		if err == bufio.ErrBufferFull {
			continued = true
			continue
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		if !continued && (len(line) == 1 || len(line) == 2 && line[0] == '\r') {
			return string(b), nil
		}
		continued = false
	}
}

// HeaderNewlines turns line breaks in a field value into spaces, as
// http.Header.Write does: a value can never start a field of its own.
var HeaderNewlines = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ")
