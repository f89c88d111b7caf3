;; Like memcheck.wat, but grows its memory past 1 MiB (to 2 MiB), where a CGI run's
;; memory moves off the slot's pooled buffer to the engine's allocator: run twice,
;; it proves both are clean for the next run. Exits 1 if any byte past its data was
;; not zero.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 2)
  ;; iovec at 0: {ptr 16, len 32}
  (data (i32.const 0) "\10\00\00\00\20\00\00\00")
  (data (i32.const 16) "Content-Type: text/plain\n\nclean\n")
  (func $check_and_dirty (param $from i32) (param $to i32)
    (local $i i32)
    (local.set $i (local.get $from))
    (loop $scan
      (if (i32.load8_u (local.get $i)) (then (call $proc_exit (i32.const 1))))
      (i32.store8 (local.get $i) (i32.const 0xff))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $scan (i32.lt_u (local.get $i) (local.get $to)))))
  (func (export "_start")
    (call $check_and_dirty (i32.const 0x100) (i32.const 0x20000))
    (if (i32.eq (memory.grow (i32.const 30)) (i32.const -1)) (then (call $proc_exit (i32.const 2))))
    (call $check_and_dirty (i32.const 0x20000) (i32.const 0x200000))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
