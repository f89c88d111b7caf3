;; noglobal.wat: no global and no export section; the start function loops.
(module
  (memory 1)
  (func $init (local $i i32)
    (loop $l
      (i32.store8 (local.get $i) (local.get $i))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 16)))))
  (start $init)
  (data (i32.const 100) "kept"))
