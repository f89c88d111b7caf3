;; A CGI command that traps (unreachable) after its header section, before any body
;; byte: the head is still held, so the client gets 500, not a cut response.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  ;; iovec at 0: {ptr 16, len 26}
  (data (i32.const 0) "\10\00\00\00\1a\00\00\00")
  (data (i32.const 16) "Content-Type: text/plain\n\n")
  (func (export "_start")
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    unreachable))
