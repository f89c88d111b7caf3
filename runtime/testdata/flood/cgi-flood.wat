;; A hostile CGI command (docs/cgi.md: stderr goes to the log) that writes 64 MiB
;; of NUL bytes to stderr in 64 KiB writes, then answers "ok".
;; Rebuild: bash sdk/c/build.sh
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  ;; 0: iovec {64 KiB of zeros at 65536}; 8: nwritten; 16: iovec of the response
  (memory (export "memory") 2)
  (data (i32.const 0) "\00\00\01\00\00\00\01\00")
  (data (i32.const 16) "\20\00\00\00\11\00\00\00")
  (data (i32.const 32) "Status: 200\r\n\r\nok")
  (func (export "_start")
    (local $i i32)
    (loop $more
      (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const 1024))))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 8)))))
