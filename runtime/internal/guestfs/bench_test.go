package guestfs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// benchTree makes a 4 KiB file at the root and three directories down.
func benchTree(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a", "b", "c"), 0o755); err != nil {
		b.Fatal(err)
	}
	data := []byte(strings.Repeat("x", 4096))
	for _, p := range []string{"f.txt", "a/b/c/f.txt"} {
		if err := os.WriteFile(filepath.Join(dir, p), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// benchKinds are the filesystems under comparison: wazero's DirFS (the baseline,
// which follows links out of the mount), guestfs, and guestfs without openat2 (what
// runs where the kernel lacks it).
var benchKinds = []string{"dirfs", "guestfs", "osroot"}

func benchFS(b *testing.B, kind, dir string) experimentalsys.FS {
	b.Helper()
	if kind == "dirfs" {
		return sysfs.DirFS(dir)
	}
	fsys, err := Open(dir, false)
	if err != nil {
		b.Fatal(err)
	}
	if kind == "osroot" {
		fsys.fast.close()
		fsys.fast = nil
	}
	b.Cleanup(func() { _ = fsys.Close() })
	return fsys
}

var benchCases = []struct{ name, path string }{{"depth0", "f.txt"}, {"depth3", "a/b/c/f.txt"}}

// BenchmarkFS is the filesystem alone: what a guest's open+read+close or stat costs
// the host below wazero's WASI layer. Compare dirfs and guestfs in one run:
//
//	go test -run '^$' -bench . -count 6 ./runtime/internal/guestfs/ > fs.txt
//	go run golang.org/x/perf/cmd/benchstat@latest -col /fs fs.txt
//
// cpu-ns/op (the process's CPU time per operation, system calls included) is
// steadier than ns/op on a busy machine.
func BenchmarkFS(b *testing.B) {
	dir := benchTree(b)
	buf := make([]byte, 4096)
	for _, c := range benchCases {
		for _, kind := range benchKinds {
			fsys := benchFS(b, kind, dir)
			b.Run("op=read/"+c.name+"/fs="+kind, func(b *testing.B) {
				b.ReportAllocs()
				cpu0 := testkit.CPUTime(b)
				for b.Loop() {
					f, errno := fsys.OpenFile(c.path, experimentalsys.O_RDONLY, 0)
					if errno != 0 {
						b.Fatal(errno)
					}
					if _, errno := f.Read(buf); errno != 0 {
						b.Fatal(errno)
					}
					f.Close()
				}
				testkit.ReportCPU(b, cpu0)
			})
			b.Run("op=stat/"+c.name+"/fs="+kind, func(b *testing.B) {
				b.ReportAllocs()
				cpu0 := testkit.CPUTime(b)
				for b.Loop() {
					if _, errno := fsys.Stat(c.path); errno != 0 {
						b.Fatal(errno)
					}
				}
				testkit.ReportCPU(b, cpu0)
			})
		}
	}
}

// BenchmarkGuest is the same through a guest (runtime/testdata/fsbench.wat) calling
// path_open, fd_read and fd_close, or path_filestat_get: what an app sees.
func BenchmarkGuest(b *testing.B) {
	bin, err := os.ReadFile("../../testdata/fsbench.wasm")
	if err != nil {
		b.Fatal(err)
	}
	dir := benchTree(b)
	ctx := context.Background()
	for _, c := range benchCases {
		for _, kind := range benchKinds {
			fsys := benchFS(b, kind, dir)
			rt := wazero.NewRuntime(ctx)
			b.Cleanup(func() { _ = rt.Close(ctx) })
			wasi_snapshot_preview1.MustInstantiate(ctx, rt)
			mod, err := rt.InstantiateWithConfig(ctx, bin, wazero.NewModuleConfig().WithStartFunctions().
				WithFSConfig(wazero.NewFSConfig().(sysfs.FSConfig).WithSysFSMount(fsys, "/m")))
			if err != nil {
				b.Fatal(err)
			}
			mod.Memory().Write(0, []byte(c.path))
			for _, op := range []string{"read", "stat"} {
				fn := mod.ExportedFunction(op)
				b.Run("op="+op+"/"+c.name+"/fs="+kind, func(b *testing.B) {
					b.ReportAllocs()
					cpu0 := testkit.CPUTime(b)
					// The loop runs in the guest: one call per b.N.
					res, err := fn.Call(ctx, 3, api.EncodeU32(uint32(len(c.path))), api.EncodeU32(uint32(b.N)))
					if err != nil || res[0] != 0 {
						b.Fatalf("%s: errno %v, %v", op, res, err)
					}
					testkit.ReportCPU(b, cpu0)
				})
			}
		}
	}
}
