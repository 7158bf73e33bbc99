package h1

import (
	"bufio"
	"errors"
	"io"
	"net/http"
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

// ReadTrailer reads the trailer section that ends a chunked body (what
// follows its last chunk, up to and with the empty line) from br, up to
// limit bytes, and adds its fields to *h, made when it is nil and the
// section has any. Requests and responses both read their trailers here.
func ReadTrailer(br *bufio.Reader, limit int, h *http.Header) error {
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
	if *h == nil {
		*h = http.Header{}
	}
	_, err = ParseFields(head, *h)
	return err
}

// ErrTrailerBareLF is returned for a trailer section with a line ended by
// LF alone.
var ErrTrailerBareLF = errors.New("trailer line ended by a bare LF")

// HeaderNewlines turns line breaks in a field value into spaces, as
// http.Header.Write does: a value can never start a field of its own.
var HeaderNewlines = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ")
