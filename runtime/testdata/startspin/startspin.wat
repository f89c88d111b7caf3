;; A sync guest whose Wasm start function spins whenever the app's key-value
;; store tells it to: the start section runs before anything the host calls,
;; so this is the hardest place to stop a guest. Written from abi/SPEC.md and
;; plugins/kv/ABI.md alone (grant it kv). Rebuild: bash sdk/c/build.sh
;;
;; The start function reads the app's kv store (shared by every instance):
;;   key "spin" set: recurse without end (fib(90), no loop instruction)
;;   key "loop" set: loop without end
;; otherwise it returns and the instance serves:
;;   /arm    sets "spin", so every instance started from now on spins: a
;;           tenant turning a working app into one that cannot start
;;   /crash  traps, so the pool has to start a replacement
;;   else    "ok\n"
(module
  (import "wasmsrv_kv" "get" (func $get (param i32 i32 i32 i32) (result i64)))
  (import "wasmsrv_kv" "set" (func $set (param i32 i32 i32 i32 i64) (result i32)))
  (import "wasmsrv" "req_head" (func $req_head (param i32 i32 i32) (result i32)))
  (import "wasmsrv" "resp_write" (func $resp_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "ok\n")
  (data (i32.const 8) "armed\n")
  (data (i32.const 16) "spin")
  (data (i32.const 24) "loop")
  (func (export "wasmsrv_abi_v1"))
  (func (export "wasmsrv_mode_sync"))

  (func $fib (param $n i64) (result i64)
    (if (result i64) (i64.lt_u (local.get $n) (i64.const 2))
      (then (local.get $n))
      (else (i64.add (call $fib (i64.sub (local.get $n) (i64.const 1)))
                     (call $fib (i64.sub (local.get $n) (i64.const 2)))))))

  ;; $isset: the key of 4 bytes at $key exists (get answers a length, not an error).
  (func $isset (param $key i32) (result i32)
    (i64.ge_s (call $get (local.get $key) (i32.const 4) (i32.const 4096) (i32.const 64)) (i64.const 0)))

  (func $start
    (if (call $isset (i32.const 16))
      (then (drop (call $fib (i64.const 90)))))
    (if (call $isset (i32.const 24))
      (then (loop $forever (br $forever)))))
  (start $start)

  (func (export "wasmsrv_handle") (param $ctx i32) (result i32)
    (local $c i32)
    (drop (call $req_head (local.get $ctx) (i32.const 1024) (i32.const 60000)))
    ;; The path is string field 2 of the head: skip method and scheme.
    (local.set $c (i32.add (i32.const 1048) (i32.add (i32.const 4) (i32.load (i32.const 1048)))))
    (local.set $c (i32.add (local.get $c) (i32.add (i32.const 4) (i32.load (local.get $c)))))
    (local.set $c (i32.load8_u (i32.add (local.get $c) (i32.const 5)))) ;; the byte after "/"
    (if (i32.eq (local.get $c) (i32.const 97)) ;; 'a'
      (then
        (if (call $set (i32.const 16) (i32.const 4) (i32.const 0) (i32.const 2) (i64.const 0))
          (then (return (i32.const 500))))
        (drop (call $resp_write (local.get $ctx) (i32.const 8) (i32.const 6) (i32.const 1)))
        (return (i32.const 0))))
    (if (i32.eq (local.get $c) (i32.const 99)) ;; 'c'
      (then unreachable))
    (drop (call $resp_write (local.get $ctx) (i32.const 0) (i32.const 3) (i32.const 1)))
    (i32.const 0)))
