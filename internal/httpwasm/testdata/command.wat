;; An http-wasm guest built as a WASI command, as TinyGo's -target=wasi makes
;; them: _start runs main, which registers the handler (here: sets $ready and
;; enables buffer_response for the instance). With config "exit", main ends
;; with proc_exit(0), as newer TinyGo does: that instance cannot serve.
(module $command
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "http_handler" "enable_features" (func $enable_features (param i32) (result i32)))
  (import "http_handler" "get_config" (func $get_config (param i32 i32) (result i32)))
  (import "http_handler" "write_body" (func $write_body (param i32 i32 i32)))
  (memory (export "memory") 1 1)
  (data (i32.const 0) "ready")
  (global $ready (mut i32) (i32.const 0))
  (func (export "_start")
    (drop (call $enable_features (i32.const 2)))
    (global.set $ready (i32.const 1))
    (if (i32.eq (call $get_config (i32.const 64) (i32.const 4)) (i32.const 4))
      (then (call $proc_exit (i32.const 0)))))
  (func (export "handle_request") (result i64)
    (if (i32.eqz (global.get $ready)) (then unreachable))
    (call $write_body (i32.const 1) (i32.const 0) (i32.const 5))
    (i64.const 0))
)
