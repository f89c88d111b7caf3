;; loop.wat: an infinite loop and a bounded one, with an existing global,
;; exports and a name section. It has a memory, so it also gets safepoints.
(module
  (memory 1)
  (global $calls (mut i32) (i32.const 0))
  ;; spin never returns unless interrupted.
  (func $spin (export "spin")
    (loop $l
      (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
      (br $l)))
  ;; sum returns 0+1+...+(n-1), through nested loops and a 0x03 byte in an
  ;; immediate (i32.const 3) that must not be taken for a loop.
  (func $sum (export "sum") (param $n i32) (result i32)
    (local $i i32) (local $acc i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $acc (i32.add (local.get $acc) (local.get $i)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (loop $inner (br_if $inner (i32.const 0)))
        (drop (i32.const 3))
        (br $next)))
    (local.get $acc))
  (export "calls" (global $calls)))
