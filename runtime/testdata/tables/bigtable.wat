;; A sync guest whose three tables ask for 100,000,000 entries each at
;; instantiation (2.4 GB of host memory): the host must refuse to load it,
;; naming the table and the limit. Rebuild: bash sdk/c/build.sh
(module
  (memory (export "memory") 1)
  (table 1 funcref)
  (table 100000000 funcref)
  (table 100000000 100000000 externref)
  (func (export "wasmsrv_abi_v1"))
  (func (export "wasmsrv_mode_sync"))
  (func (export "wasmsrv_handle") (param i32) (result i32) (i32.const 200)))
