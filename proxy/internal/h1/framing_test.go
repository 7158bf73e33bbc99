package h1

import (
	"errors"
	"testing"
)

func TestFrame(t *testing.T) {
	tests := []struct {
		name       string
		te, clen   []string
		refuseBoth bool
		want       Framing
		status     int // of the FramingError, 0 for none
	}{
		{"none", nil, nil, true, Framing{Length: -1}, 0},
		{"length", nil, []string{"12"}, true, Framing{Length: 12, LengthField: "12"}, 0},
		{"lengths that agree", nil, []string{"3", " 3"}, true, Framing{Length: 3, LengthField: "3"}, 0},
		{"lengths that differ", nil, []string{"3", "4"}, true, Framing{}, 400},
		{"length not digits", nil, []string{"abc"}, false, Framing{}, 400},
		{"signed length", nil, []string{"+3"}, false, Framing{}, 400},
		{"chunked", []string{"chunked"}, nil, true, Framing{Chunked: true, Length: -1}, 0},
		{"chunked in capitals", []string{"Chunked"}, nil, true, Framing{Chunked: true, Length: -1}, 0},
		{"two codings", []string{"gzip", "chunked"}, nil, true, Framing{}, 501},
		{"unknown coding", []string{"gzip"}, nil, false, Framing{}, 501},
		{"both, request", []string{"chunked"}, []string{"3"}, true, Framing{}, 400},
		{"both, response", []string{"chunked"}, []string{"3"}, false, Framing{Chunked: true, Length: 3, LengthField: "3"}, 0},
		{"both, response, bad length", []string{"chunked"}, []string{"x"}, false, Framing{}, 400},
		{"bad coding before bad length", []string{"gzip"}, []string{"x"}, true, Framing{}, 501},
	}
	for _, tt := range tests {
		got, err := Frame(tt.te, tt.clen, tt.refuseBoth)
		var fe *FramingError
		switch {
		case tt.status == 0 && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.status == 0 && got != tt.want:
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		case tt.status != 0 && !errors.As(err, &fe):
			t.Errorf("%s: %+v, %v, want a FramingError", tt.name, got, err)
		case tt.status != 0 && fe.Status != tt.status:
			t.Errorf("%s: status %d, want %d", tt.name, fe.Status, tt.status)
		}
	}
}
