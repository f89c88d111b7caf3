;; A hostile CGI command (a plain WASI command, docs/cgi.md): its stdin is a
;; list of records {u32 n, n bytes}, and it writes each record to stdout with
;; one fd_write, so the tests choose exactly what the command prints and in
;; which writes: any header section, any body, any framing trick.
;;
;; Rebuild: bash sdk/c/build.sh (wat2wasm from wabt)
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 3)

  ;; stdin is read whole to 0x10000 (at most 64 KiB); iovecs at 0x100, counts at 0x200.
  (func (export "_start")
    (local $n i32)
    (local $p i32)
    (local $len i32)
    (block $eof
      (loop $more
        (i32.store (i32.const 0x100) (i32.add (i32.const 0x10000) (local.get $n)))
        (i32.store (i32.const 0x104) (i32.sub (i32.const 0x10000) (local.get $n)))
        (br_if $eof (call $fd_read (i32.const 0) (i32.const 0x100) (i32.const 1) (i32.const 0x200)))
        (br_if $eof (i32.eqz (i32.load (i32.const 0x200))))
        (local.set $n (i32.add (local.get $n) (i32.load (i32.const 0x200))))
        (br_if $more (i32.lt_u (local.get $n) (i32.const 0x10000)))))
    (local.set $p (i32.const 0x10000))
    (loop $rec
      (if (i32.le_u (i32.add (local.get $p) (i32.const 4)) (i32.add (i32.const 0x10000) (local.get $n)))
        (then
          (local.set $len (i32.load (local.get $p)))
          (i32.store (i32.const 0x100) (i32.add (local.get $p) (i32.const 4)))
          (i32.store (i32.const 0x104) (local.get $len))
          (drop (call $fd_write (i32.const 1) (i32.const 0x100) (i32.const 1) (i32.const 0x200)))
          (local.set $p (i32.add (local.get $p) (i32.add (i32.const 4) (local.get $len))))
          (br $rec)))))
)
