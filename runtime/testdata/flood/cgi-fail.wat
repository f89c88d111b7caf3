;; A hostile CGI command that writes 4 KiB of NUL bytes to stderr and exits with
;; status 1 without a response: each request costs a 500 and a log record quoting
;; the tail of its stderr (docs/cgi.md), which must count against the app's budget.
;; Rebuild: bash sdk/c/build.sh
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\00\01\00\00\00\10\00\00")
  (func (export "_start")
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $proc_exit (i32.const 1))))
