;; A guest for the mount benchmarks (runtime/internal/guestfs: BenchmarkGuest*): it opens,
;; reads and closes a file, or stats it, n times through WASI, with the path the
;; host wrote at offset 0. Both loops return the first WASI errno that is not 0.
;; Rebuild: bash sdk/c/build.sh (wat2wasm).
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close"
    (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_filestat_get"
    (func $path_filestat_get (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; iovec at 1024: buffer 2048, 4096 bytes
  (data (i32.const 1024) "\00\08\00\00\00\10\00\00")

  ;; read(dir, path_len, n): open (following links, FD_READ), read up to 4 KiB, close.
  (func (export "read") (param $dir i32) (param $len i32) (param $n i32) (result i32)
    (local $e i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $e (call $path_open (local.get $dir) (i32.const 1) (i32.const 0) (local.get $len)
          (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 1044)))
        (br_if $done (local.get $e))
        (local.set $e (call $fd_read (i32.load (i32.const 1044)) (i32.const 1024) (i32.const 1) (i32.const 1040)))
        (drop (call $fd_close (i32.load (i32.const 1044))))
        (br_if $done (local.get $e))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $e))

  ;; stat(dir, path_len, n): path_filestat_get, following links.
  (func (export "stat") (param $dir i32) (param $len i32) (param $n i32) (result i32)
    (local $e i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $e (call $path_filestat_get (local.get $dir) (i32.const 1) (i32.const 0) (local.get $len) (i32.const 1100)))
        (br_if $done (local.get $e))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $e))
)
