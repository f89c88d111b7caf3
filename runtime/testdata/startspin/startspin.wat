;; A sync guest whose Wasm start function spins whenever a file tells it to:
;; the start section runs before anything the host calls, so this is the
;; hardest place to stop a guest. Written from abi/SPEC.md alone. Rebuild:
;; bash sdk/c/build.sh
;;
;; The start function looks in the first mounted directory (fd 3):
;;   "spin"  exists: recurse without end (fib(90), no loop instruction)
;;   "loop"  exists: loop without end
;; otherwise it returns and the instance serves:
;;   /arm    creates "spin", so every instance started from now on spins (a
;;           tenant turning a working app into one that cannot start)
;;   /crash  traps, so the pool has to start a replacement
;;   else    "ok\n"
(module
  (import "wasi_snapshot_preview1" "path_filestat_get"
    (func $filestat (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
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

  (func $exists (param $name i32) (result i32)
    (i32.eqz (call $filestat (i32.const 3) (i32.const 0) (local.get $name) (i32.const 4) (i32.const 4096))))

  (func $start
    (if (call $exists (i32.const 16))
      (then (drop (call $fib (i64.const 90)))))
    (if (call $exists (i32.const 24))
      (then (loop $forever (br $forever)))))
  (start $start)

  (func (export "wasmsrv_handle") (param $ctx i32) (result i32)
    (local $c i32)
    (drop (call $req_head (local.get $ctx) (i32.const 1024) (i32.const 60000)))
    ;; The path is string field 2 of the head: skip method and scheme.
    (local.set $c (i32.add (i32.const 1048) (i32.add (i32.const 4) (i32.load (i32.const 1048)))))
    (local.set $c (i32.add (local.get $c) (i32.add (i32.const 4) (i32.load (local.get $c)))))
    (local.set $c (i32.load8_u (i32.add (local.get $c) (i32.const 5)))) ;; the byte after "/"
    (if (i32.eq (local.get $c) (i32.const 97)) ;; 'a': create "spin"
      (then
        (if (i32.eqz (call $open (i32.const 3) (i32.const 0) (i32.const 16) (i32.const 4)
                       (i32.const 1) (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 4096)))
          (then (drop (call $close (i32.load (i32.const 4096))))))
        (drop (call $resp_write (local.get $ctx) (i32.const 8) (i32.const 6) (i32.const 1)))
        (return (i32.const 0))))
    (if (i32.eq (local.get $c) (i32.const 99)) ;; 'c'
      (then unreachable))
    (drop (call $resp_write (local.get $ctx) (i32.const 0) (i32.const 3) (i32.const 1)))
    (i32.const 0)))
