;; A sync guest whose expensive paths recurse without a single `loop`
;; instruction anywhere in the module: the interrupt checks at loop back-edges
;; never run, only those at function entries can stop it. Written from
;; abi/SPEC.md alone. Rebuild: bash sdk/c/build.sh
;;
;;   /fib?N       fib(N) by plain exponential recursion (default N = 50: hours)
;;   /indirect?N  the same through call_indirect
;;   /mutual?N    the same through two functions calling each other
;;   anything     "ok\n"
;;
;; A finished computation answers "fib(N) = R\n".
(module
  (import "wasmsrv" "req_head" (func $req_head (param i32 i32 i32) (result i32)))
  (import "wasmsrv" "resp_write" (func $resp_write (param i32 i32 i32 i32) (result i32)))
  (type $fn (func (param i64) (result i64)))
  (memory (export "memory") 2)
  (table 1 1 funcref)
  (elem (i32.const 0) $fib_indirect)
  (data (i32.const 0) "ok\n")
  (data (i32.const 16) "fib(")
  (data (i32.const 32) ") = ")
  (func (export "wasmsrv_abi_v1"))
  (func (export "wasmsrv_mode_sync"))

  (func $fib (param $n i64) (result i64)
    (if (result i64) (i64.lt_u (local.get $n) (i64.const 2))
      (then (local.get $n))
      (else (i64.add (call $fib (i64.sub (local.get $n) (i64.const 1)))
                     (call $fib (i64.sub (local.get $n) (i64.const 2)))))))

  (func $fib_indirect (param $n i64) (result i64)
    (if (result i64) (i64.lt_u (local.get $n) (i64.const 2))
      (then (local.get $n))
      (else (i64.add (call_indirect (type $fn) (i64.sub (local.get $n) (i64.const 1)) (i32.const 0))
                     (call_indirect (type $fn) (i64.sub (local.get $n) (i64.const 2)) (i32.const 0))))))

  (func $even (param $n i64) (result i64)
    (if (result i64) (i64.lt_u (local.get $n) (i64.const 2))
      (then (local.get $n))
      (else (i64.add (call $odd (i64.sub (local.get $n) (i64.const 1)))
                     (call $odd (i64.sub (local.get $n) (i64.const 2)))))))
  (func $odd (param $n i64) (result i64)
    (if (result i64) (i64.lt_u (local.get $n) (i64.const 2))
      (then (local.get $n))
      (else (i64.add (call $even (i64.sub (local.get $n) (i64.const 1)))
                     (call $even (i64.sub (local.get $n) (i64.const 2)))))))

  ;; $field returns the address of string field n of the request head at p
  ;; (its u32 length, then its bytes), skipping fields by recursion.
  (func $field (param $p i32) (param $n i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n))
      (then (local.get $p))
      (else (call $field
        (i32.add (i32.add (local.get $p) (i32.const 4)) (i32.load (local.get $p)))
        (i32.sub (local.get $n) (i32.const 1))))))

  ;; $atoi parses the decimal digits at p (len bytes) onto acc.
  (func $atoi (param $p i32) (param $len i32) (param $acc i64) (result i64)
    (local $d i32)
    (if (result i64) (i32.eqz (local.get $len))
      (then (local.get $acc))
      (else
        (local.set $d (i32.sub (i32.load8_u (local.get $p)) (i32.const 48)))
        (if (result i64) (i32.gt_u (local.get $d) (i32.const 9))
          (then (local.get $acc))
          (else (call $atoi (i32.add (local.get $p) (i32.const 1)) (i32.sub (local.get $len) (i32.const 1))
            (i64.add (i64.mul (local.get $acc) (i64.const 10)) (i64.extend_i32_u (local.get $d)))))))))

  ;; $itoa writes v in decimal ending just before end and returns where it starts.
  (func $itoa (param $v i64) (param $end i32) (result i32)
    (local $p i32)
    (local.set $p (i32.sub (local.get $end) (i32.const 1)))
    (i64.store8 (local.get $p) (i64.add (i64.rem_u (local.get $v) (i64.const 10)) (i64.const 48)))
    (if (result i32) (i64.lt_u (local.get $v) (i64.const 10))
      (then (local.get $p))
      (else (call $itoa (i64.div_u (local.get $v) (i64.const 10)) (local.get $p)))))

  (func $write (param $ctx i32) (param $p i32) (param $n i32)
    (drop (call $resp_write (local.get $ctx) (local.get $p) (local.get $n) (i32.const 2))))

  (func (export "wasmsrv_handle") (param $ctx i32) (result i32)
    (local $path i32) (local $query i32) (local $qlen i32) (local $n i64) (local $r i64) (local $c i32) (local $s i32)
    (if (i32.gt_u (call $req_head (local.get $ctx) (i32.const 1024) (i32.const 60000)) (i32.const 60000))
      (then (return (i32.const 431))))
    (local.set $path (call $field (i32.const 1048) (i32.const 2)))
    (local.set $query (call $field (i32.const 1048) (i32.const 3)))
    (local.set $qlen (i32.load (local.get $query)))
    (local.set $n (if (result i64) (local.get $qlen)
      (then (call $atoi (i32.add (local.get $query) (i32.const 4)) (local.get $qlen) (i64.const 0)))
      (else (i64.const 50))))
    (local.set $c (if (result i32) (i32.ge_u (i32.load (local.get $path)) (i32.const 2))
      (then (i32.load8_u (i32.add (local.get $path) (i32.const 5))))
      (else (i32.const 0))))
    (if (i32.eq (local.get $c) (i32.const 102)) ;; 'f'
      (then (local.set $r (call $fib (local.get $n))))
      (else (if (i32.eq (local.get $c) (i32.const 105)) ;; 'i'
        (then (local.set $r (call_indirect (type $fn) (local.get $n) (i32.const 0))))
        (else (if (i32.eq (local.get $c) (i32.const 109)) ;; 'm'
          (then (local.set $r (call $even (local.get $n))))
          (else
            (drop (call $resp_write (local.get $ctx) (i32.const 0) (i32.const 3) (i32.const 1)))
            (return (i32.const 0))))))))
    ;; "fib(" N ") = " R "\n"
    (call $write (local.get $ctx) (i32.const 16) (i32.const 4))
    (local.set $s (call $itoa (local.get $n) (i32.const 512)))
    (call $write (local.get $ctx) (local.get $s) (i32.sub (i32.const 512) (local.get $s)))
    (call $write (local.get $ctx) (i32.const 32) (i32.const 4))
    (local.set $s (call $itoa (local.get $r) (i32.const 512)))
    (i32.store8 (i32.const 512) (i32.const 10))
    (drop (call $resp_write (local.get $ctx) (local.get $s) (i32.sub (i32.const 513) (local.get $s)) (i32.const 1)))
    (i32.const 0)))
