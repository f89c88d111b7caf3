;; A CGI command that writes a header line that never ends: over the header limit, 500.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  ;; iovec at 0: {ptr 16, len 4096}; bytes at 16.. are "X: " then 'a's
  (data (i32.const 0) "\10\00\00\00\00\10\00\00")
  (data (i32.const 16) "X: ")
  (func (export "_start") (local $i i32)
    (memory.fill (i32.const 19) (i32.const 97) (i32.const 4093))
    (loop $more
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const 64))))))
