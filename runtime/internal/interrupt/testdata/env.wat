;; env.wat: the imports of imports.wat (wazero's host module builder cannot
;; export globals, so they come from a wasm module).
(module
  (global (export "limit") i32 (i32.const 10))
  (global (export "counter") (mut i64) (i64.const 0))
  (func (export "f") (param i32) (result i32) (i32.mul (local.get 0) (local.get 0))))
