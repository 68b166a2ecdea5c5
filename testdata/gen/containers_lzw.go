//go:build ignore

// containers_lzw compresses or decompresses stdin to stdout exactly as Gardener's
// etcd-backup-restore does for `.Z` snapshots (pkg/compressor): Go compress/lzw, LSB order,
// literal width 8. That is GIF-style LZW (clear and EOF codes, codes up to 12 bits, no header),
// not Unix compress(1).
//
//	GO111MODULE=off go run containers_lzw.go    < in > out.Z   # compress
//	GO111MODULE=off go run containers_lzw.go -d < in.Z > out   # decompress
package main

import (
	"bufio"
	"compress/lzw"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	decompress := flag.Bool("d", false, "decompress instead of compress")
	flag.Parse()
	out := bufio.NewWriter(os.Stdout)
	var err error
	if *decompress {
		r := lzw.NewReader(bufio.NewReader(os.Stdin), lzw.LSB, 8)
		_, err = io.Copy(out, r)
		if err == nil {
			err = r.Close()
		}
	} else {
		w := lzw.NewWriter(out, lzw.LSB, 8)
		_, err = io.Copy(w, bufio.NewReader(os.Stdin))
		if err == nil {
			err = w.Close() // writes the EOF code and flushes the last bits
		}
	}
	if err == nil {
		err = out.Flush()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "containers_lzw:", err)
		os.Exit(1)
	}
}
