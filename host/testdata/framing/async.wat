;; The async twin of sync.wat (same script format, abi/SPEC.md §8): a hostile
;; guest that runs the request body as a script of resp_start/resp_write calls,
;; ignoring every result. One request at a time is enough for the tests; 'R'
;; ends the connection with ctx_done(code), the end of the script with 0.
;;
;; Rebuild: bash sdk/c/build.sh (wat2wasm from wabt)
(module
  (import "wasmsrv" "body_read" (func $body_read (param i32 i32 i32) (result i64)))
  (import "wasmsrv" "resp_start" (func $resp_start (param i32 i32 i32 i32) (result i32)))
  (import "wasmsrv" "resp_write" (func $resp_write (param i32 i32 i32 i32) (result i32)))
  (import "wasmsrv" "ctx_done" (func $ctx_done (param i32 i32) (result i32)))
  (memory (export "memory") 3)
  (global $cur (mut i32) (i32.const 0)) ;; the connection being read, 0 for none
  (global $n (mut i32) (i32.const 0))   ;; script bytes read so far

  (func (export "wasmsrv_abi_v1"))
  (func (export "wasmsrv_mode_async"))

  (func (export "wasmsrv_on_event") (param $ctx i32) (param $kind i32) (param $a i64) (param $b i64) (result i32)
    (if (i32.eq (local.get $kind) (i32.const 1)) ;; REQUEST_START
      (then
        (global.set $cur (local.get $ctx))
        (global.set $n (i32.const 0))
        (call $pump (local.get $ctx))))
    (if (i32.and (i32.eq (local.get $kind) (i32.const 2)) (i32.eq (local.get $ctx) (global.get $cur))) ;; BODY
      (then (call $pump (local.get $ctx))))
    (if (i32.eq (local.get $kind) (i32.const 9)) ;; CANCEL
      (then
        (if (i32.eq (local.get $ctx) (global.get $cur)) (then (global.set $cur (i32.const 0))))
        (drop (call $ctx_done (local.get $ctx) (i32.const 0)))))
    (i32.const 0))

  ;; pump reads what the host has of the script; at its end the script runs.
  (func $pump (param $ctx i32)
    (local $r i64)
    (loop $more
      (local.set $r (call $body_read (local.get $ctx)
        (i32.add (i32.const 0x10000) (global.get $n)) (i32.sub (i32.const 0x10000) (global.get $n))))
      (if (i64.eq (local.get $r) (i64.const -2)) (then (return))) ;; ERR_WOULD_BLOCK: BODY follows
      (if (i64.ge_s (local.get $r) (i64.const 0))
        (then
          (global.set $n (i32.add (global.get $n) (i32.wrap_i64 (i64.and (local.get $r) (i64.const 0xffffffff)))))
          (br_if $more (i32.and
            (i64.eqz (i64.shr_u (local.get $r) (i64.const 32)))
            (i32.lt_u (global.get $n) (i32.const 0x10000)))))))
    (global.set $cur (i32.const 0))
    (drop (call $ctx_done (local.get $ctx)
      (call $run (local.get $ctx) (i32.const 0x10000) (i32.add (i32.const 0x10000) (global.get $n))))))

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
      (if (i32.eq (local.get $op) (i32.const 0x42)) ;; 'B'
        (then
          (drop (call $resp_write (local.get $ctx) (i32.const 0) (local.get $n) (local.get $a)))
          (local.set $n (i32.const 0))))
      (local.set $p (i32.add (local.get $p) (local.get $n)))
      (br $next))
    (i32.const 0))
)
