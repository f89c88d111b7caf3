;; (Built by bash sdk/c/build.sh.) An http-wasm guest written from the specification (http-wasm.io, "HTTP
;; Handler ABI"), for the host's tests. Its config (get_config) starts with one
;; letter that picks what handle_request does, so one module exercises every host
;; function and feature; the hostile ones break the contract on purpose.
(module $probe
  (import "http_handler" "enable_features" (func $enable_features (param i32) (result i32)))
  (import "http_handler" "get_config" (func $get_config (param i32 i32) (result i32)))
  (import "http_handler" "log" (func $log (param i32 i32 i32)))
  (import "http_handler" "log_enabled" (func $log_enabled (param i32) (result i32)))
  (import "http_handler" "get_header_names" (func $get_header_names (param i32 i32 i32) (result i64)))
  (import "http_handler" "get_header_values" (func $get_header_values (param i32 i32 i32 i32 i32) (result i64)))
  (import "http_handler" "set_header_value" (func $set_header_value (param i32 i32 i32 i32 i32)))
  (import "http_handler" "add_header_value" (func $add_header_value (param i32 i32 i32 i32 i32)))
  (import "http_handler" "remove_header" (func $remove_header (param i32 i32 i32)))
  (import "http_handler" "read_body" (func $read_body (param i32 i32 i32) (result i64)))
  (import "http_handler" "write_body" (func $write_body (param i32 i32 i32)))
  (import "http_handler" "get_method" (func $get_method (param i32 i32) (result i32)))
  (import "http_handler" "set_method" (func $set_method (param i32 i32)))
  (import "http_handler" "get_uri" (func $get_uri (param i32 i32) (result i32)))
  (import "http_handler" "set_uri" (func $set_uri (param i32 i32)))
  (import "http_handler" "get_protocol_version" (func $get_protocol_version (param i32 i32) (result i32)))
  (import "http_handler" "get_source_addr" (func $get_source_addr (param i32 i32) (result i32)))
  (import "http_handler" "get_status_code" (func $get_status_code (result i32)))
  (import "http_handler" "set_status_code" (func $set_status_code (param i32)))

  (memory (export "memory") 2 16)

  ;; strings
  (data (i32.const 0x000) "X-Method")      ;; 8
  (data (i32.const 0x010) "X-URI")         ;; 5
  (data (i32.const 0x020) "X-Proto")       ;; 7
  (data (i32.const 0x030) "X-Source")      ;; 8
  (data (i32.const 0x040) "Accept")        ;; 6
  (data (i32.const 0x050) "PATCH")         ;; 5
  (data (i32.const 0x060) "/new/path?x=1") ;; 13
  (data (i32.const 0x070) "X-Set")         ;; 5
  (data (i32.const 0x078) "X-Add")         ;; 5
  (data (i32.const 0x080) "X-Remove")      ;; 8
  (data (i32.const 0x090) "Host")          ;; 4
  (data (i32.const 0x098) "rewritten.example") ;; 17
  (data (i32.const 0x0b0) "X-Early")       ;; 7
  (data (i32.const 0x0b8) "yes")           ;; 3
  (data (i32.const 0x0c0) "new-body")      ;; 8
  (data (i32.const 0x0d0) "wrapped:")      ;; 8
  (data (i32.const 0x0e0) "X-Trailer")     ;; 9
  (data (i32.const 0x0f0) "t1")            ;; 2
  (data (i32.const 0x0f8) "12")            ;; "1" and "2"
  (data (i32.const 0x100) "guest says hi") ;; 13
  (data (i32.const 0x110) "X-Log")         ;; 5
  (data (i32.const 0x118) "X-Debug")       ;; 7
  (data (i32.const 0x120) "01")            ;; "0" and "1"
  (data (i32.const 0x128) "teapot")        ;; 6
  (data (i32.const 0x130) "Bad Name")      ;; 8
  (data (i32.const 0x140) "X-Late")        ;; 6

  (global $op (mut i32) (i32.const 0))
  ;; 0x200: the config; 0x1000..0x9000: a scratch buffer
  (global $buf i32 (i32.const 0x1000))
  (global $buf_limit i32 (i32.const 0x8000))

  (func $read_op
    (drop (call $get_config (i32.const 0x200) (i32.const 64)))
    (global.set $op (i32.load8_u (i32.const 0x200))))

  ;; The start function: some ops enable features for every request here.
  (func $init
    (call $read_op)
    (if (i32.eq (global.get $op) (i32.const 0x49)) ;; 'I': buffer_response for the instance
      (then (drop (call $enable_features (i32.const 2)))))
    (if (i32.eq (global.get $op) (i32.const 0x47)) ;; 'G': a request function outside a request
      (then (drop (call $get_method (global.get $buf) (global.get $buf_limit))))))
  (start $init)

  (func $resp_header (param $name i32) (param $name_len i32) (param $val i32) (param $val_len i32)
    (call $set_header_value (i32.const 1) (local.get $name) (local.get $name_len) (local.get $val) (local.get $val_len)))

  ;; copies the request body to the response body, 7 bytes at a time
  (func $echo_body
    (local $r i64)
    (loop $more
      (local.set $r (call $read_body (i32.const 0) (global.get $buf) (i32.const 7)))
      (call $write_body (i32.const 1) (global.get $buf) (i32.wrap_i64 (local.get $r)))
      (br_if $more (i64.eqz (i64.shr_u (local.get $r) (i64.const 32))))))

  ;; reads the request body to its end
  (func $drain_body
    (loop $more
      (br_if $more (i64.eqz (i64.shr_u
        (call $read_body (i32.const 0) (global.get $buf) (global.get $buf_limit)) (i64.const 32))))))

  (func (export "handle_request") (result i64)
    (local $n i32) (local $cl i64)
    (call $read_op)
    ;; 'r': request facts as response headers
    (if (i32.eq (global.get $op) (i32.const 0x72)) (then
      (local.set $n (call $get_method (global.get $buf) (global.get $buf_limit)))
      (call $resp_header (i32.const 0x000) (i32.const 8) (global.get $buf) (local.get $n))
      (local.set $n (call $get_uri (global.get $buf) (global.get $buf_limit)))
      (call $resp_header (i32.const 0x010) (i32.const 5) (global.get $buf) (local.get $n))
      (local.set $n (call $get_protocol_version (global.get $buf) (global.get $buf_limit)))
      (call $resp_header (i32.const 0x020) (i32.const 7) (global.get $buf) (local.get $n))
      (local.set $n (call $get_source_addr (global.get $buf) (global.get $buf_limit)))
      (call $resp_header (i32.const 0x030) (i32.const 8) (global.get $buf) (local.get $n))
      (return (i64.const 0))))
    ;; 'n': the request's header names as the body, 200+count as the status
    (if (i32.eq (global.get $op) (i32.const 0x6e)) (then
      (local.set $cl (call $get_header_names (i32.const 0) (global.get $buf) (global.get $buf_limit)))
      (call $write_body (i32.const 1) (global.get $buf) (i32.wrap_i64 (local.get $cl)))
      (call $set_status_code (i32.add (i32.const 200) (i32.wrap_i64 (i64.shr_u (local.get $cl) (i64.const 32)))))
      (return (i64.const 0))))
    ;; 'v': the Accept values; a buf_limit of 1 first must leave memory alone
    (if (i32.eq (global.get $op) (i32.const 0x76)) (then
      (i32.store8 (global.get $buf) (i32.const 0x7f))
      (local.set $cl (call $get_header_values (i32.const 0) (i32.const 0x040) (i32.const 6) (global.get $buf) (i32.const 1)))
      (if (i32.ne (i32.load8_u (global.get $buf)) (i32.const 0x7f)) (then unreachable))
      (local.set $cl (call $get_header_values (i32.const 0) (i32.const 0x040) (i32.const 6) (global.get $buf) (global.get $buf_limit)))
      (call $write_body (i32.const 1) (global.get $buf) (i32.wrap_i64 (local.get $cl)))
      (call $set_status_code (i32.add (i32.const 200) (i32.wrap_i64 (i64.shr_u (local.get $cl) (i64.const 32)))))
      (return (i64.const 0))))
    ;; 'm': change the request, then pass it on
    (if (i32.eq (global.get $op) (i32.const 0x6d)) (then
      (call $set_method (i32.const 0x050) (i32.const 5))
      (call $set_uri (i32.const 0x060) (i32.const 13))
      (call $set_header_value (i32.const 0) (i32.const 0x070) (i32.const 5) (i32.const 0x0b8) (i32.const 3))
      (call $add_header_value (i32.const 0) (i32.const 0x078) (i32.const 5) (i32.const 0x0f8) (i32.const 1))
      (call $add_header_value (i32.const 0) (i32.const 0x078) (i32.const 5) (i32.const 0x0f9) (i32.const 1))
      (call $remove_header (i32.const 0) (i32.const 0x080) (i32.const 8))
      (call $set_header_value (i32.const 0) (i32.const 0x090) (i32.const 4) (i32.const 0x098) (i32.const 17))
      (call $resp_header (i32.const 0x0b0) (i32.const 7) (i32.const 0x0b8) (i32.const 3))
      (return (i64.const 1))))
    ;; 'e': echo the body
    (if (i32.eq (global.get $op) (i32.const 0x65)) (then
      (call $echo_body)
      (return (i64.const 0))))
    ;; 'b': buffer_request, read it all, pass on: the next handler reads it again
    (if (i32.eq (global.get $op) (i32.const 0x62)) (then
      (drop (call $enable_features (i32.const 1)))
      (call $drain_body)
      (return (i64.const 1))))
    ;; 'c': read 3 bytes without buffering: the next handler gets the rest
    (if (i32.eq (global.get $op) (i32.const 0x63)) (then
      (drop (call $read_body (i32.const 0) (global.get $buf) (i32.const 3)))
      (return (i64.const 1))))
    ;; 'w': a request body of the guest's own
    (if (i32.eq (global.get $op) (i32.const 0x77)) (then
      (call $write_body (i32.const 0) (i32.const 0x0c0) (i32.const 4))
      (call $write_body (i32.const 0) (i32.const 0x0c4) (i32.const 4))
      (return (i64.const 1))))
    ;; 'R': buffer_response; handle_response (ctx 7) wraps the response
    (if (i32.eq (global.get $op) (i32.const 0x52)) (then
      (drop (call $enable_features (i32.const 2)))
      (return (i64.const 0x0000000700000001))))
    ;; 'I': buffer_response was enabled in the start function
    (if (i32.eq (global.get $op) (i32.const 0x49)) (then
      (return (i64.const 0x0000000700000001))))
    ;; 'L': no buffering; handle_response (ctx 8) changes the sent response: trap
    (if (i32.eq (global.get $op) (i32.const 0x4c)) (then
      (return (i64.const 0x0000000800000001))))
    ;; 'A': buffer_response; handle_response (ctx 9) changes the request: trap
    (if (i32.eq (global.get $op) (i32.const 0x41)) (then
      (drop (call $enable_features (i32.const 2)))
      (return (i64.const 0x0000000900000001))))
    ;; 'T': trailers
    (if (i32.eq (global.get $op) (i32.const 0x54)) (then
      (drop (call $enable_features (i32.const 4)))
      (call $write_body (i32.const 1) (i32.const 0x0c0) (i32.const 8))
      (call $set_header_value (i32.const 3) (i32.const 0x0e0) (i32.const 9) (i32.const 0x0f0) (i32.const 2))
      (return (i64.const 0))))
    ;; 'P': trailers and buffer_request; read the body, then the request's
    ;; trailer X-Trailer as the response body
    (if (i32.eq (global.get $op) (i32.const 0x50)) (then
      (drop (call $enable_features (i32.const 5)))
      (call $drain_body)
      (local.set $cl (call $get_header_values (i32.const 2) (i32.const 0x0e0) (i32.const 9) (global.get $buf) (global.get $buf_limit)))
      (call $write_body (i32.const 1) (global.get $buf) (i32.wrap_i64 (local.get $cl)))
      (call $set_status_code (i32.add (i32.const 200) (i32.wrap_i64 (i64.shr_u (local.get $cl) (i64.const 32)))))
      (return (i64.const 0))))
    ;; 'Q': trailers and buffer_response; handle_response (ctx 10) appends the
    ;; next handler's trailer X-Trailer to the body
    (if (i32.eq (global.get $op) (i32.const 0x51)) (then
      (drop (call $enable_features (i32.const 6)))
      (return (i64.const 0x0000000a00000001))))
    ;; 't': a trailer without the feature: trap
    (if (i32.eq (global.get $op) (i32.const 0x74)) (then
      (call $set_header_value (i32.const 3) (i32.const 0x0e0) (i32.const 9) (i32.const 0x0f0) (i32.const 2))
      (return (i64.const 0))))
    ;; 'l': log at info; X-Log / X-Debug say which levels are enabled
    (if (i32.eq (global.get $op) (i32.const 0x6c)) (then
      (local.set $n (call $log_enabled (i32.const 0)))
      (if (local.get $n) (then (call $log (i32.const 0) (i32.const 0x100) (i32.const 13))))
      (call $resp_header (i32.const 0x110) (i32.const 5) (i32.add (i32.const 0x120) (local.get $n)) (i32.const 1))
      (local.set $n (call $log_enabled (i32.const -1)))
      (call $resp_header (i32.const 0x118) (i32.const 7) (i32.add (i32.const 0x120) (local.get $n)) (i32.const 1))
      (call $log (i32.const 3) (i32.const 0x100) (i32.const 13)) ;; level none: nothing
      (return (i64.const 0))))
    ;; 'd': pass on (an app: the default status)
    (if (i32.eq (global.get $op) (i32.const 0x64)) (then
      (return (i64.const 1))))
    ;; 'k': the config as the body
    (if (i32.eq (global.get $op) (i32.const 0x6b)) (then
      (local.set $n (call $get_config (global.get $buf) (global.get $buf_limit)))
      (call $write_body (i32.const 1) (global.get $buf) (local.get $n))
      (return (i64.const 0))))
    ;; 's': 418 with a body
    (if (i32.eq (global.get $op) (i32.const 0x73)) (then
      (call $set_status_code (i32.const 418))
      (call $write_body (i32.const 1) (i32.const 0x128) (i32.const 6))
      (return (i64.const 0))))

    ;; hostile
    ;; 'S': a status that is not one
    (if (i32.eq (global.get $op) (i32.const 0x53)) (then
      (call $set_status_code (i32.const 99))
      (return (i64.const 0))))
    ;; 'x': a buffer outside memory
    (if (i32.eq (global.get $op) (i32.const 0x78)) (then
      (drop (call $get_uri (i32.const 0xffffff00) (i32.const 0x1000)))
      (return (i64.const 0))))
    ;; 'X': a huge length
    (if (i32.eq (global.get $op) (i32.const 0x58)) (then
      (call $write_body (i32.const 1) (i32.const 0) (i32.const 0xffffffff))
      (return (i64.const 0))))
    ;; 'y': a name region wrapping around the address space
    (if (i32.eq (global.get $op) (i32.const 0x79)) (then
      (drop (call $get_header_values (i32.const 0) (i32.const 0xfffffff0) (i32.const 0x20) (global.get $buf) (global.get $buf_limit)))
      (return (i64.const 0))))
    ;; 'o': loop forever
    (if (i32.eq (global.get $op) (i32.const 0x6f)) (then
      (loop $forever (br $forever))))
    ;; 'M': grow memory until refused, then trap
    (if (i32.eq (global.get $op) (i32.const 0x4d)) (then
      (loop $grow
        (br_if $grow (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
      unreachable))
    ;; 'F': write response bytes forever
    (if (i32.eq (global.get $op) (i32.const 0x46)) (then
      (loop $flood
        (call $write_body (i32.const 1) (global.get $buf) (global.get $buf_limit))
        (br $flood))))
    ;; 'H': add a 32 KiB header value forever (each a copy on the host)
    (if (i32.eq (global.get $op) (i32.const 0x48)) (then
      (memory.fill (global.get $buf) (i32.const 0x61) (global.get $buf_limit))
      (loop $headers
        (call $add_header_value (i32.const 1) (i32.const 0x140) (i32.const 6) (global.get $buf) (global.get $buf_limit))
        (br $headers))))
    ;; 'K': an unknown header kind
    (if (i32.eq (global.get $op) (i32.const 0x4b)) (then
      (drop (call $get_header_names (i32.const 9) (global.get $buf) (global.get $buf_limit)))
      (return (i64.const 0))))
    ;; 'N': an invalid header name
    (if (i32.eq (global.get $op) (i32.const 0x4e)) (then
      (call $resp_header (i32.const 0x130) (i32.const 8) (i32.const 0x0b8) (i32.const 3))
      (return (i64.const 0))))
    ;; 'z': read_body with a zero buf_limit
    (if (i32.eq (global.get $op) (i32.const 0x7a)) (then
      (drop (call $read_body (i32.const 0) (global.get $buf) (i32.const 0)))
      (return (i64.const 0))))
    ;; 'u': set_uri with a space in it
    (if (i32.eq (global.get $op) (i32.const 0x75)) (then
      (i32.store8 (i32.const 0x1000) (i32.const 0x2f))
      (i32.store8 (i32.const 0x1001) (i32.const 0x20))
      (call $set_uri (i32.const 0x1000) (i32.const 2))
      (return (i64.const 0))))
    unreachable)

  (func (export "handle_response") (param $ctx i32) (param $is_error i32)
    (local $r i64)
    ;; 7: wrap the buffered response: status+1, "wrapped:" + body
    (if (i32.eq (local.get $ctx) (i32.const 7)) (then
      (call $set_status_code (i32.add (call $get_status_code) (i32.const 1)))
      (local.set $r (call $read_body (i32.const 1) (global.get $buf) (global.get $buf_limit)))
      (call $write_body (i32.const 1) (i32.const 0x0d0) (i32.const 8))
      (call $write_body (i32.const 1) (global.get $buf) (i32.wrap_i64 (local.get $r)))
      (return)))
    ;; 8: change a response already sent
    (if (i32.eq (local.get $ctx) (i32.const 8)) (then
      (call $resp_header (i32.const 0x140) (i32.const 6) (i32.const 0x0b8) (i32.const 3))
      (return)))
    ;; 9: change the request after next
    (if (i32.eq (local.get $ctx) (i32.const 9)) (then
      (call $set_header_value (i32.const 0) (i32.const 0x140) (i32.const 6) (i32.const 0x0b8) (i32.const 3))
      (return)))
    ;; 10: the next handler's trailer, appended to its body
    (if (i32.eq (local.get $ctx) (i32.const 10)) (then
      (local.set $r (call $read_body (i32.const 1) (global.get $buf) (global.get $buf_limit)))
      (call $write_body (i32.const 1) (global.get $buf) (i32.wrap_i64 (local.get $r)))
      (local.set $r (call $get_header_values (i32.const 3) (i32.const 0x0e0) (i32.const 9) (global.get $buf) (global.get $buf_limit)))
      (call $write_body (i32.const 1) (global.get $buf) (i32.wrap_i64 (local.get $r)))
      (return)))
    ;; 0: nothing to do
    (if (i32.ne (local.get $ctx) (i32.const 0)) (then unreachable)))
)
