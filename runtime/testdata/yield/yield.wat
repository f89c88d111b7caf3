;; An async guest that abuses YIELD (SPEC §8.1): once asked, it answers every
;; POLL with YIELD forever, each call returning at once, so no single event
;; overruns its deadline. Written from abi/SPEC.md alone. Rebuild:
;; bash sdk/c/build.sh
;;
;;   /yield  writes "partial\n" (flushed, no END), returns YIELD and never ends
;;           the connection: the host must still send what it wrote, and stop
;;           the endless POLLs
;;   else    "ok\n", ended at once
(module
  (import "wasmsrv" "req_head" (func $req_head (param i32 i32 i32) (result i32)))
  (import "wasmsrv" "resp_write" (func $resp_write (param i32 i32 i32 i32) (result i32)))
  (import "wasmsrv" "ctx_done" (func $ctx_done (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $yielding (mut i32) (i32.const 0))
  (data (i32.const 0) "partial\n")
  (data (i32.const 16) "ok\n")
  (func (export "wasmsrv_abi_v1"))
  (func (export "wasmsrv_mode_async"))
  (func (export "wasmsrv_on_event") (param $ctx i32) (param $kind i32) (param $a i64) (param $b i64) (result i32)
    (local $c i32)
    (if (i32.eqz (local.get $kind)) ;; POLL
      (then (return (global.get $yielding))))
    (if (i32.ne (local.get $kind) (i32.const 1)) ;; not REQUEST_START: nothing to do
      (then (return (i32.const 0))))
    (drop (call $req_head (local.get $ctx) (i32.const 1024) (i32.const 60000)))
    (local.set $c (i32.add (i32.const 1048) (i32.add (i32.const 4) (i32.load (i32.const 1048)))))
    (local.set $c (i32.add (local.get $c) (i32.add (i32.const 4) (i32.load (local.get $c)))))
    (local.set $c (i32.load8_u (i32.add (local.get $c) (i32.const 5)))) ;; the byte after "/"
    (if (i32.eq (local.get $c) (i32.const 121)) ;; 'y'
      (then
        (drop (call $resp_write (local.get $ctx) (i32.const 0) (i32.const 8) (i32.const 0)))
        (global.set $yielding (i32.const 1))
        (return (i32.const 1))))
    (drop (call $resp_write (local.get $ctx) (i32.const 16) (i32.const 3) (i32.const 1)))
    (drop (call $ctx_done (local.get $ctx) (i32.const 0)))
    (i32.const 0)))
