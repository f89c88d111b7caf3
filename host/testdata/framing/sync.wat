;; A hostile sync guest written from abi/SPEC.md alone: it runs a script sent as
;; the request body and ignores every result, so the tests can try any framing
;; trick on the host (internal/framing_e2e_test.go, cmd/wasmsrv/e2e_framing_test.go).
;; The script is a list of ops (integers little-endian):
;;
;;   'S' u32 status, u32 n, n bytes   resp_start(status, the n bytes as header block)
;;   'W' u32 flags,  u32 n, n bytes   resp_write(the n bytes, flags)
;;   'B' u32 flags,  u32 n            resp_write(n bytes of guest memory from 0, flags)
;;   'R' i32 code                     return code from wasmsrv_handle
;;
;; The end of the script returns 0.
;;
;; Rebuild: bash sdk/c/build.sh (wat2wasm from wabt)
(module
  (import "wasmsrv" "body_read" (func $body_read (param i32 i32 i32) (result i64)))
  (import "wasmsrv" "resp_start" (func $resp_start (param i32 i32 i32 i32) (result i32)))
  (import "wasmsrv" "resp_write" (func $resp_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 3)

  (func (export "wasmsrv_abi_v1"))
  (func (export "wasmsrv_mode_sync"))

  ;; The script is read to 0x10000 (at most 64 KiB).
  (func (export "wasmsrv_handle") (param $ctx i32) (result i32)
    (local $n i32)
    (local $r i64)
    (block $done
      (loop $more
        (local.set $r (call $body_read (local.get $ctx)
          (i32.add (i32.const 0x10000) (local.get $n)) (i32.sub (i32.const 0x10000) (local.get $n))))
        (br_if $done (i64.lt_s (local.get $r) (i64.const 0)))
        (local.set $n (i32.add (local.get $n) (i32.wrap_i64 (i64.and (local.get $r) (i64.const 0xffffffff)))))
        (br_if $done (i64.ne (i64.shr_u (local.get $r) (i64.const 32)) (i64.const 0)))
        (br_if $more (i32.lt_u (local.get $n) (i32.const 0x10000)))))
    (call $run (local.get $ctx) (i32.const 0x10000) (i32.add (i32.const 0x10000) (local.get $n))))

  (func $run (param $ctx i32) (param $p i32) (param $end i32) (result i32)
    (local $op i32)
    (local $a i32)
    (local $n i32)
    (loop $next
      (if (i32.ge_u (local.get $p) (local.get $end)) (then (return (i32.const 0))))
      (local.set $op (i32.load8_u (local.get $p)))
      (local.set $a (i32.load (i32.add (local.get $p) (i32.const 1))))
      (if (i32.eq (local.get $op) (i32.const 0x52)) (then (return (local.get $a)))) ;; 'R'
      (local.set $n (i32.load (i32.add (local.get $p) (i32.const 5))))
      (local.set $p (i32.add (local.get $p) (i32.const 9)))
      (if (i32.eq (local.get $op) (i32.const 0x53)) ;; 'S'
        (then (drop (call $resp_start (local.get $ctx) (local.get $a) (local.get $p) (local.get $n)))))
      (if (i32.eq (local.get $op) (i32.const 0x57)) ;; 'W'
        (then (drop (call $resp_write (local.get $ctx) (local.get $p) (local.get $n) (local.get $a)))))
      (if (i32.eq (local.get $op) (i32.const 0x42)) ;; 'B': no bytes follow in the script
        (then
          (drop (call $resp_write (local.get $ctx) (i32.const 0) (local.get $n) (local.get $a)))
          (local.set $n (i32.const 0))))
      (local.set $p (i32.add (local.get $p) (local.get $n)))
      (br $next))
    (i32.const 0))
)
