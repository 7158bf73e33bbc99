package proxy

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"
)

// benchText is size bytes of real text: the repository's own docs,
// repeated as needed.
func benchText(b *testing.B, size int) []byte {
	files, _ := filepath.Glob("../docs/*.md")
	var all []byte
	for _, f := range files {
		p, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		all = append(all, p...)
	}
	if len(all) == 0 {
		b.Fatal("no docs to compress")
	}
	for len(all) < size {
		all = append(all, all...)
	}
	return all[:size]
}

// BenchmarkCompress measures the CPU one response costs each encoder, as
// the proxy uses them (one pooled encoder reset per response, level 7 for
// gzip, zstd's default level), for 10 KB and 100 KB of text:
//
//	go test -run '^$' -bench BenchmarkCompress -benchtime 2s ./proxy
func BenchmarkCompress(b *testing.B) {
	type enc interface {
		io.Writer
		Close() error
		Reset(io.Writer)
	}
	newStd := func() enc { w, _ := gzip.NewWriterLevel(io.Discard, gzipLevel); return w }
	newK := func() enc { w, _ := kgzip.NewWriterLevel(io.Discard, gzipLevel); return w }
	var pools encoderPools
	newZ := func() enc { return pools.get(encZstd, io.Discard) }
	for _, size := range []int{10_000, 100_000} {
		src := benchText(b, size)
		for _, e := range []struct {
			name string
			mk   func() enc
		}{{"stdlib-gzip-7", newStd}, {"klauspost-gzip-7", newK}, {"klauspost-zstd-default", newZ}} {
			b.Run(strings.Join([]string{e.name, itoa(size)}, "/"), func(b *testing.B) {
				w := e.mk()
				var out countWriter
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					out = 0
					w.Reset(&out)
					w.Write(src)
					w.Close()
				}
				b.ReportMetric(float64(out)/float64(size), "ratio")
			})
		}
	}
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

func itoa(n int) string { return strconv.Itoa(n/1000) + "KB" }
