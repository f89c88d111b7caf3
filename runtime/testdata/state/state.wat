;; A sync guest with state in a mutable global and in linear memory: each request
;; bumps both and returns global*1000 + memory[16], so a test can tell whether two
;; instances (or an instance and the one whose memory reservation it reuses) share
;; anything. Rebuild: bash sdk/c/build.sh
(module
  (memory (export "memory") 1)
  (global $n (mut i32) (i32.const 0))
  (func (export "wasmsrv_abi_v1"))
  (func (export "wasmsrv_mode_sync"))
  (func (export "wasmsrv_handle") (param $ctx i32) (result i32)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (i32.store (i32.const 16) (i32.add (i32.load (i32.const 16)) (i32.const 1)))
    (i32.add (i32.mul (global.get $n) (i32.const 1000)) (i32.load (i32.const 16)))))
