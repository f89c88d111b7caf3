;; A sync guest that tries to make the host allocate memory through tables,
;; which live outside linear memory: three funcref tables and an externref
;; table, all declared without a maximum. Written from abi/SPEC.md alone.
;; Rebuild: bash sdk/c/build.sh
;;
;;   /bomb   table.grow each funcref table by 100,000,000 entries filled with a
;;           function reference (2.4 GB of host memory if it worked)
;;   /creep  grow every table by 4096 entries at a time until table.grow fails
;;   else    "ok\n"
;;
;; Both answer "entries N\n": how many entries the tables hold afterwards.
(module
  (import "wasmsrv" "resp_write" (func $resp_write (param i32 i32 i32 i32) (result i32)))
  (import "wasmsrv" "req_head" (func $req_head (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (table $t0 1 funcref)
  (table $t1 1 funcref)
  (table $t2 1 funcref)
  (table $e 1 externref)
  (elem declare func $f)
  (data (i32.const 0) "ok\n")
  (data (i32.const 16) "entries ")
  (func $f)
  (func (export "wasmsrv_abi_v1"))
  (func (export "wasmsrv_mode_sync"))

  (func $itoa (param $v i64) (param $end i32) (result i32)
    (local $p i32)
    (local.set $p (i32.sub (local.get $end) (i32.const 1)))
    (i64.store8 (local.get $p) (i64.add (i64.rem_u (local.get $v) (i64.const 10)) (i64.const 48)))
    (if (result i32) (i64.lt_u (local.get $v) (i64.const 10))
      (then (local.get $p))
      (else (call $itoa (i64.div_u (local.get $v) (i64.const 10)) (local.get $p)))))

  (func $total (result i64)
    (i64.extend_i32_u (i32.add (i32.add (table.size $t0) (table.size $t1))
                               (i32.add (table.size $t2) (table.size $e)))))

  (func (export "wasmsrv_handle") (param $ctx i32) (result i32)
    (local $c i32) (local $s i32)
    (drop (call $req_head (local.get $ctx) (i32.const 1024) (i32.const 60000)))
    (local.set $c (i32.add (i32.const 1048) (i32.add (i32.const 4) (i32.load (i32.const 1048)))))
    (local.set $c (i32.add (local.get $c) (i32.add (i32.const 4) (i32.load (local.get $c)))))
    (local.set $c (i32.load8_u (i32.add (local.get $c) (i32.const 5))))
    (if (i32.eq (local.get $c) (i32.const 98)) ;; 'b'
      (then
        (drop (table.grow $t0 (ref.func $f) (i32.const 100000000)))
        (drop (table.grow $t1 (ref.func $f) (i32.const 100000000)))
        (drop (table.grow $t2 (ref.func $f) (i32.const 100000000)))))
    (if (i32.eq (local.get $c) (i32.const 99)) ;; 'c'
      (then
        (loop $more
          (br_if $more (i32.ne (table.grow $t0 (ref.func $f) (i32.const 4096)) (i32.const -1))))
        (loop $more
          (br_if $more (i32.ne (table.grow $t1 (ref.func $f) (i32.const 4096)) (i32.const -1))))
        (loop $more
          (br_if $more (i32.ne (table.grow $t2 (ref.func $f) (i32.const 4096)) (i32.const -1))))
        (loop $more
          (br_if $more (i32.ne (table.grow $e (ref.null extern) (i32.const 4096)) (i32.const -1))))))
    (if (i32.or (i32.eq (local.get $c) (i32.const 98)) (i32.eq (local.get $c) (i32.const 99)))
      (then
        (drop (call $resp_write (local.get $ctx) (i32.const 16) (i32.const 8) (i32.const 2)))
        (i32.store8 (i32.const 512) (i32.const 10))
        (local.set $s (call $itoa (call $total) (i32.const 512)))
        (drop (call $resp_write (local.get $ctx) (local.get $s) (i32.sub (i32.const 513) (local.get $s)) (i32.const 1)))
        (return (i32.const 0))))
    (drop (call $resp_write (local.get $ctx) (i32.const 0) (i32.const 3) (i32.const 1)))
    (i32.const 0)))
