;; calls_nomem.wat: calls.wat without a memory, so without safepoints: the
;; flag checks at function entries alone must stop it.
(module
  (type $fn (func (param i64) (result i64)))
  
  (table 1 1 funcref)
  (elem (i32.const 0) $fib_indirect)
  (func $fib (export "fib") (param $n i64) (result i64)
    (if (result i64) (i64.lt_u (local.get $n) (i64.const 2))
      (then (local.get $n))
      (else (i64.add (call $fib (i64.sub (local.get $n) (i64.const 1)))
                     (call $fib (i64.sub (local.get $n) (i64.const 2)))))))
  (func $fib_indirect (export "fib_indirect") (param $n i64) (result i64)
    (if (result i64) (i64.lt_u (local.get $n) (i64.const 2))
      (then (local.get $n))
      (else (i64.add (call_indirect (type $fn) (i64.sub (local.get $n) (i64.const 1)) (i32.const 0))
                     (call_indirect (type $fn) (i64.sub (local.get $n) (i64.const 2)) (i32.const 0))))))
  (func (export "spin") (drop (call $fib (i64.const 90))))
  (func (export "spin_indirect") (drop (call $fib_indirect (i64.const 90)))))
