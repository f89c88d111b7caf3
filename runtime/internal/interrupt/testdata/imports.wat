;; imports.wat: imported globals come first in the index space, so the
;; injected global must be index 3 here.
(module
  (import "env" "limit" (global $limit i32))
  (import "env" "f" (func $f (param i32) (result i32)))
  (import "env" "counter" (global $counter (mut i64)))
  (global $scale i32 (i32.const 2))
  (func (export "run") (result i32)
    (local $i i32) (local $acc i32)
    (loop $l
      (global.set $counter (i64.add (global.get $counter) (i64.const 1)))
      (local.set $acc (i32.add (local.get $acc) (call $f (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (global.get $limit))))
    (i32.mul (local.get $acc) (global.get $scale))))
