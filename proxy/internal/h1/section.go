package h1

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
)

// ReadSection reads a header section from br, up to and with its empty
// line: a response's head, or a chunked body's trailers (an empty section
// is "\n" or "\r\n").
func ReadSection(br *bufio.Reader, limit int) (string, error) {
	return readSection(br, limit, false, nil)
}

// readSection is the one header-section reader, for requests, responses
// and trailers. With skipEmpty, empty lines before the section are
// skipped (RFC 9112 2.2: before a request line) instead of taken for an
// empty section. wait, when not nil, is called once, the first time the
// section did not come whole in what br holds.
func readSection(br *bufio.Reader, limit int, skipEmpty bool, wait func()) (string, error) {
	for {
		buf, _ := br.Peek(br.Buffered())
		if skipEmpty {
			skip := 0
			for skip < len(buf) && (buf[skip] == '\n' || buf[skip] == '\r' && skip+1 < len(buf) && buf[skip+1] == '\n') {
				skip++
			}
			if skip > 0 {
				br.Discard(skip)
				buf = buf[skip:]
			}
		} else if len(buf) > 0 && buf[0] == '\n' {
			// An empty section, as trailers mostly are.
			br.Discard(1)
			return "\n", nil
		} else if len(buf) > 1 && buf[0] == '\r' && buf[1] == '\n' {
			br.Discard(2)
			return "\r\n", nil
		}
		if end := headerEnd(buf); end > 0 {
			s := string(buf[:end])
			br.Discard(end)
			return s, nil
		}
		if len(buf) > limit {
			return "", ErrHeaderTooLarge
		}
		if wait != nil {
			wait()
			wait = nil
		}
		if len(buf) == br.Size() {
			return readLongSection(br, limit)
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

// readLongSection reads a header section longer than br's buffer. Its
// memory doubles as it grows, and the section is not copied again into
// its string: the section costs about twice its bytes at most (append's
// growth by a quarter and a copy cost six times).
func readLongSection(br *bufio.Reader, limit int) (string, error) {
	var b strings.Builder
	b.Grow(2 * br.Size())
	continued := false
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > b.Cap()-b.Len() {
			b.Grow(len(line)) // to twice the capacity, and line
		}
		b.Write(line)
		if b.Len() > limit {
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
			return b.String(), nil
		}
		continued = false
	}
}

// ReadTrailer reads the trailer section that ends a chunked body (what
// follows its last chunk, up to and with the empty line) from br, up to
// limit bytes, and adds its fields to *h, made when it is nil and the
// section has any. Requests and responses both read their trailers here.
func ReadTrailer(br *bufio.Reader, limit int, h *http.Header) error {
	return readTrailer(br, limit, 0, h)
}

// readTrailer is ReadTrailer with a bound on the count of fields (0 for
// none): ErrTooManyFields beyond it, before any is added to *h.
func readTrailer(br *bufio.Reader, limit, maxFields int, h *http.Header) error {
	head, err := ReadSection(br, limit)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF // the body ends with the trailer section's empty line
	}
	if err == nil && BareLF(head) {
		return ErrTrailerBareLF // as in a header section
	}
	if err != nil || len(head) <= 2 {
		return err
	}
	if maxFields > 0 && strings.Count(head, "\n")-1 > maxFields {
		return ErrTooManyFields
	}
	if *h == nil {
		*h = http.Header{}
	}
	_, err = ParseFields(head, *h)
	return err
}

// ErrTooManyFields is returned for a trailer section with more fields
// than its limit.
var ErrTooManyFields = errors.New("too many fields")

// ErrTrailerBareLF is returned for a trailer section with a line ended by
// LF alone.
var ErrTrailerBareLF = errors.New("trailer line ended by a bare LF")

// HeaderNewlines turns line breaks in a field value into spaces, as
// http.Header.Write does: a value can never start a field of its own.
var HeaderNewlines = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ")
