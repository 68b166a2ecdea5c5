//go:build ignore

// containers_k3szip writes a snapshot zip the way k3s `--etcd-snapshot-compress` does
// (k3s pkg/etcd/snapshot.go compressSnapshot): archive/zip, one entry named after the snapshot
// (no extension), header from zip.FileInfoHeader of the snapshot file, Method Deflate,
// Modified = the snapshot time, streamed with io.Copy (so the entry has a data descriptor).
//
//	GO111MODULE=off go run containers_k3szip.go -in SNAPSHOT -name etcd-snapshot-node-1-1795800000 \
//	    -time 1795800000 -out etcd-snapshot-node-1-1795800000.zip
//
// Output is deterministic: the time is given, and the mode comes from the input file.
package main

import (
	"archive/zip"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

func run(in, name, out string, unix int64) error {
	src, err := os.Open(in)
	if err != nil {
		return err
	}
	defer src.Close()
	info, err := src.Stat()
	if err != nil {
		return err
	}
	zf, err := os.Create(out)
	if err != nil {
		return err
	}
	defer zf.Close()
	zw := zip.NewWriter(zf)
	header, err := zip.FileInfoHeader(info)
	if err != nil {
		return err
	}
	header.Name = name
	header.Method = zip.Deflate
	header.Modified = time.Unix(unix, 0).UTC()
	w, err := zw.CreateHeader(header)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, src); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return zf.Close()
}

func main() {
	in := flag.String("in", "", "snapshot file")
	name := flag.String("name", "", "entry name (k3s: the snapshot name, no extension)")
	out := flag.String("out", "", "zip file to write")
	unix := flag.Int64("time", 0, "entry modification time, unix seconds")
	flag.Parse()
	if err := run(*in, *name, *out, *unix); err != nil {
		fmt.Fprintln(os.Stderr, "containers_k3szip:", err)
		os.Exit(1)
	}
}
