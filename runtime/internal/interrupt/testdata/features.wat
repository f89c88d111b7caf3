;; features.wat: SIMD, bulk memory, reference types, saturating truncation,
;; sign extension and multi-value blocks, each inside a loop, so the
;; instrumenter must decode every immediate to find the loops.
(module
  (type $pair (func (param i32 i32) (result i32 i32)))
  (memory 1)
  (table $t 4 funcref)
  (table $ext 2 externref)
  (elem $e func $double $swap)
  (data $d "\01\02\03\04\05\06\07\08\09\0a\0b\0c\0d\0e\0f\10")
  (func $double (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2)))
  (func $swap (param i32 i32) (result i32 i32) (local.get 1) (local.get 0))

  ;; simd: sums lanes of vectors built with every SIMD immediate form.
  (func (export "simd") (result i32)
    (local $i i32) (local $v v128) (local $acc i32)
    (v128.store (i32.const 0) (v128.const i32x4 1 2 3 4))
    (loop $l
      (local.set $v (v128.load offset=0 align=16 (i32.const 0)))
      (local.set $v (i8x16.shuffle 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 (local.get $v) (local.get $v)))
      (local.set $v (i32x4.replace_lane 3 (local.get $v) (i32.const 3)))
      (local.set $v (v128.load32_lane 1 (i32.const 0) (local.get $v)))
      (v128.store64_lane 0 (i32.const 32) (local.get $v))
      (local.set $v (i32x4.add (local.get $v) (v128.load32_splat (i32.const 32))))
      (local.set $v (v128.load32_zero offset=3 (i32.const 0)))
      (local.set $acc (i32.add (local.get $acc)
        (i32.add (i32x4.extract_lane 0 (local.get $v)) (i8x16.extract_lane_u 3 (local.get $v)))))
      (local.set $acc (i32.add (local.get $acc) (i32x4.bitmask (i8x16.popcnt (local.get $v)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 3))))
    (local.get $acc))

  ;; bulk: memory.init/copy/fill, data.drop and table ops in a loop.
  (func (export "bulk") (result i32)
    (local $i i32) (local $acc i32)
    (loop $l
      (memory.init $d (i32.const 200) (i32.const 0) (i32.const 16))
      (memory.copy (i32.const 300) (i32.const 200) (i32.const 8))
      (memory.fill (i32.const 304) (local.get $i) (i32.const 2))
      (table.init $t $e (i32.const 0) (i32.const 0) (i32.const 2))
      (table.copy $t $t (i32.const 2) (i32.const 0) (i32.const 2))
      (table.fill $t (i32.const 3) (ref.null func) (i32.const 1))
      (table.set $t (i32.const 3) (table.get $t (i32.const 1)))
      (drop (table.grow $ext (ref.null extern) (i32.const 1)))
      (local.set $acc (i32.add (local.get $acc) (i32.add (table.size $ext) (i32.load (i32.const 302)))))
      (local.set $acc (i32.add (local.get $acc)
        (select (result i32) (i32.const 1) (i32.const 0) (ref.is_null (ref.func $double)))))
      (local.set $acc (i32.add (local.get $acc)
        (call_indirect $t (param i32) (result i32) (i32.const 5) (i32.const 0))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 3))))
    (elem.drop $e)
    (data.drop $d)
    (i32.add (local.get $acc)
      (i32.add (i32.trunc_sat_f64_s (f64.const 1e300)) (i32.extend8_s (i32.const 0xff)))))

  ;; multi: loops and blocks with parameters and several results, via a type
  ;; index block type (s33).
  (func (export "multi") (param $n i32) (result i32 i32)
    (local $i i32)
    (i32.const 1) (i32.const 0)
    (loop $l (type $pair) (param i32 i32) (result i32 i32)
      (call $swap)
      (block (type $pair) (param i32 i32) (result i32 i32)
        (i32.add) (i32.const 7))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (if (type $pair) (param i32 i32) (result i32 i32) (i32.const 1)
      (then) (else (call $swap)))))
