;; A hostile sync guest that floods the host log (abi/SPEC.md §1.1: stdout and
;; stderr go to the log; plugins/log/ABI.md: the log plugin). Memory is zero, so
;; every byte it writes is a NUL, which the log escapes to up to six bytes.
;;   GET /stdio  writes 64 MiB to stderr and stdout (fd_write of 64 KiB, no newline)
;;   GET /log    writes 4096 log records: a 16 KiB NUL message, two 16 KiB NUL values
;;   GET /ok     answers an empty 200
;; Rebuild: bash sdk/c/build.sh
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasmsrv" "req_head" (func $req_head (param i32 i32 i32) (result i32)))
  (import "wasmsrv_log" "write" (func $log (param i32 i32 i32 i32 i32) (result i32)))
  ;; 0: iovec {64 KiB of zeros at 65536}; 8: nwritten
  ;; 131072: request head buffer (64 KiB)
  ;; 196608: log attributes: "k1" => 16 KiB of NUL, "k2" => 16 KiB of NUL
  (memory (export "memory") 8)
  (data (i32.const 0) "\00\00\01\00\00\00\01\00")
  (data (i32.const 196608) "\02\00\00\00k1\00\40\00\00")
  (data (i32.const 213002) "\02\00\00\00k2\00\40\00\00")
  (func (export "wasmsrv_abi_v1"))
  (func (export "wasmsrv_mode_sync"))
  ;; the first byte of the path after '/'
  (func $route (param $ctx i32) (result i32)
    (local $m i32) (local $s i32)
    (drop (call $req_head (local.get $ctx) (i32.const 131072) (i32.const 65536)))
    (local.set $m (i32.load (i32.const 131096)))
    (local.set $s (i32.load (i32.add (i32.const 131100) (local.get $m))))
    (i32.load8_u (i32.add (i32.const 131109) (i32.add (local.get $m) (local.get $s)))))
  (func (export "wasmsrv_handle") (param $ctx i32) (result i32)
    (local $i i32) (local $r i32)
    (local.set $r (call $route (local.get $ctx)))
    (if (i32.eq (local.get $r) (i32.const 115)) ;; 's'
      (then
        (loop $more
          (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
          (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $more (i32.lt_u (local.get $i) (i32.const 512))))))
    (if (i32.eq (local.get $r) (i32.const 108)) ;; 'l'
      (then
        (loop $more
          (drop (call $log (i32.const 8) (i32.const 65536) (i32.const 16384)
            (i32.const 196608) (i32.const 32788)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $more (i32.lt_u (local.get $i) (i32.const 4096))))))
    (i32.const 200)))
