;; A wasmsrv guest written by hand in WebAssembly text: it calls the host functions
;; directly, with no SDK in between, to test the host's bounds checks and status
;; codes (abi/SPEC.md §2, §4). The first byte of the request body picks a scenario:
;;
;;   '0' (or no body)  run checks 1..25; all passing gives 200, header
;;                      x-raw: 1 and body "ok". A failing check k answers status
;;                      550+k if nothing was sent yet, else the response is cut.
;;   '1'..'5'           contract violations that must trap (500, instance replaced):
;;                      resp_write out of bounds, req_head out of bounds, unknown
;;                      request handle, body_read region overflowing, resp_start
;;                      region partly outside memory
;;   '6'                return 404 without a response: 404, empty body
;;   '7'                return 1000: an application error, 500
;;   '8'                unreachable: 500
;;   'a'                echo the rest of the body, read one byte per body_read
;;
;; Rebuild: bash sdk/c/build.sh (wat2wasm from wabt)
(module
  (import "wasmsrv" "req_head" (func $req_head (param i32 i32 i32) (result i32)))
  (import "wasmsrv" "body_read" (func $body_read (param i32 i32 i32) (result i64)))
  (import "wasmsrv" "resp_start" (func $resp_start (param i32 i32 i32 i32) (result i32)))
  (import "wasmsrv" "resp_write" (func $resp_write (param i32 i32 i32 i32) (result i32)))
  (import "wasmsrv" "disconnected" (func $disconnected (param i32) (result i32)))
  (import "wasmsrv" "host_features" (func $host_features (result i64)))
  (memory (export "memory") 2)

  ;; 0x100: empty header block
  (data (i32.const 0x100) "\00\00\00\00")
  ;; 0x110: {x-raw: 1}
  (data (i32.const 0x110) "\01\00\00\00\05\00\00\00x-raw\01\00\00\001")
  ;; 0x140: count 1 and no pair: malformed
  (data (i32.const 0x140) "\01\00\00\00")
  ;; 0x150: {x-bad: "a\nb"}: value with LF
  (data (i32.const 0x150) "\01\00\00\00\05\00\00\00x-bad\03\00\00\00a\0ab")
  ;; 0x170: body
  (data (i32.const 0x170) "ok")
  ;; 0x180: {"x bad": 1}: name that is not a token
  (data (i32.const 0x180) "\01\00\00\00\05\00\00\00x bad\01\00\00\001")
  ;; 0x1a0: {content-length: 1, content-length: 2}: a body with two lengths (50 bytes)
  (data (i32.const 0x1a0) "\02\00\00\00\0e\00\00\00content-length\01\00\00\001\0e\00\00\00content-length\01\00\00\002")

  (func (export "wasmsrv_abi_v1"))
  (func (export "wasmsrv_mode_sync"))

  (func (export "wasmsrv_handle") (param $ctx i32) (result i32)
    (local $r i64)
    (local $sel i32)
    (i32.store8 (i32.const 0x10) (i32.const 0x30)) ;; '0' when the body is empty
    (local.set $r (call $body_read (local.get $ctx) (i32.const 0x10) (i32.const 1)))
    (if (i64.lt_s (local.get $r) (i64.const 0)) (then (return (i32.const 400))))
    (local.set $sel (i32.load8_u (i32.const 0x10)))
    (if (i32.eq (local.get $sel) (i32.const 0x30)) (then (return (call $checks (local.get $ctx)))))
    (if (i32.eq (local.get $sel) (i32.const 0x31))
      (then (drop (call $resp_write (local.get $ctx) (i32.const 0xfffffff0) (i32.const 100) (i32.const 0)))))
    (if (i32.eq (local.get $sel) (i32.const 0x32))
      (then (drop (call $req_head (local.get $ctx) (i32.const 0x1ffff) (i32.const 0x10000)))))
    (if (i32.eq (local.get $sel) (i32.const 0x33))
      (then (drop (call $req_head (i32.add (local.get $ctx) (i32.const 1)) (i32.const 0x1000) (i32.const 0)))))
    (if (i32.eq (local.get $sel) (i32.const 0x34))
      (then (drop (call $body_read (local.get $ctx) (i32.const 0x1000) (i32.const 0xffffffff)))))
    (if (i32.eq (local.get $sel) (i32.const 0x35))
      (then (drop (call $resp_start (local.get $ctx) (i32.const 200) (i32.const 0x1fffc) (i32.const 100)))))
    (if (i32.eq (local.get $sel) (i32.const 0x36)) (then (return (i32.const 404))))
    (if (i32.eq (local.get $sel) (i32.const 0x37)) (then (return (i32.const 1000))))
    (if (i32.eq (local.get $sel) (i32.const 0x38)) (then unreachable))
    (if (i32.eq (local.get $sel) (i32.const 0x61)) (then (return (call $echo1 (local.get $ctx)))))
    ;; a violation scenario that did not trap: the host failed to check
    (i32.const 599))

  ;; echo1 copies the body to the response one byte per body_read call.
  (func $echo1 (param $ctx i32) (result i32)
    (local $r i64)
    (loop $more
      (local.set $r (call $body_read (local.get $ctx) (i32.const 0x20) (i32.const 1)))
      (if (i64.lt_s (local.get $r) (i64.const 0)) (then (return (i32.const -1))))
      ;; n must be 0 or 1
      (if (i64.gt_u (i64.and (local.get $r) (i64.const 0xffffffff)) (i64.const 1)) (then (return (i32.const -1))))
      (if (i64.eq (i64.and (local.get $r) (i64.const 0xffffffff)) (i64.const 1))
        (then (if (call $resp_write (local.get $ctx) (i32.const 0x20) (i32.const 1) (i32.const 2))
          (then (return (i32.const -1))))))
      (br_if $more (i64.eqz (i64.shr_u (local.get $r) (i64.const 32)))))
    (drop (call $resp_write (local.get $ctx) (i32.const 0x20) (i32.const 0) (i32.const 1)))
    (i32.const 0))

  (func $checks (param $ctx i32) (result i32)
    (local $h i32)
    ;; 1: limit 0 asks for the size
    (local.set $h (call $req_head (local.get $ctx) (i32.const 0x1000) (i32.const 0)))
    (if (i32.le_s (local.get $h) (i32.const 24)) (then (return (i32.const 551))))
    ;; 2: one byte short: the needed length, nothing written
    (i32.store8 (i32.const 0x1000) (i32.const 0xaa))
    (if (i32.ne (call $req_head (local.get $ctx) (i32.const 0x1000) (i32.sub (local.get $h) (i32.const 1))) (local.get $h))
      (then (return (i32.const 552))))
    (if (i32.ne (i32.load8_u (i32.const 0x1000)) (i32.const 0xaa)) (then (return (i32.const 552))))
    ;; 3: exact fit: written, format byte 1
    (if (i32.ne (call $req_head (local.get $ctx) (i32.const 0x1000) (local.get $h)) (local.get $h))
      (then (return (i32.const 553))))
    (if (i32.ne (i32.load8_u (i32.const 0x1000)) (i32.const 1)) (then (return (i32.const 553))))
    ;; 4: a larger buffer returns the same length
    (if (i32.ne (call $req_head (local.get $ctx) (i32.const 0x1000) (i32.add (local.get $h) (i32.const 100))) (local.get $h))
      (then (return (i32.const 554))))
    ;; 5: only v1 feature bits
    (if (i64.ne (i64.and (call $host_features) (i64.const -4)) (i64.const 0)) (then (return (i32.const 555))))
    ;; 6: the client is here
    (if (i32.ne (call $disconnected (local.get $ctx)) (i32.const 0)) (then (return (i32.const 556))))
    ;; 7-9: status codes outside 200..999 are bad arguments
    (if (i32.ne (call $resp_start (local.get $ctx) (i32.const 99) (i32.const 0x100) (i32.const 4)) (i32.const -3))
      (then (return (i32.const 557))))
    (if (i32.ne (call $resp_start (local.get $ctx) (i32.const 101) (i32.const 0x100) (i32.const 4)) (i32.const -3))
      (then (return (i32.const 558))))
    (if (i32.ne (call $resp_start (local.get $ctx) (i32.const 1000) (i32.const 0x100) (i32.const 4)) (i32.const -3))
      (then (return (i32.const 559))))
    ;; 10-13: malformed header blocks are bad arguments
    (if (i32.ne (call $resp_start (local.get $ctx) (i32.const 200) (i32.const 0x140) (i32.const 4)) (i32.const -3))
      (then (return (i32.const 560))))
    (if (i32.ne (call $resp_start (local.get $ctx) (i32.const 200) (i32.const 0x150) (i32.const 20)) (i32.const -3))
      (then (return (i32.const 561))))
    (if (i32.ne (call $resp_start (local.get $ctx) (i32.const 200) (i32.const 0x180) (i32.const 18)) (i32.const -3))
      (then (return (i32.const 562))))
    (if (i32.ne (call $resp_start (local.get $ctx) (i32.const 200) (i32.const 0x100) (i32.const 3)) (i32.const -3))
      (then (return (i32.const 563))))
    ;; 22-23: interim codes are not a response status: 100, 199
    (if (i32.ne (call $resp_start (local.get $ctx) (i32.const 100) (i32.const 0x100) (i32.const 4)) (i32.const -3))
      (then (return (i32.const 572))))
    (if (i32.ne (call $resp_start (local.get $ctx) (i32.const 199) (i32.const 0x100) (i32.const 4)) (i32.const -3))
      (then (return (i32.const 573))))
    ;; 24: hdr_len 0 is a head without fields
    (if (call $resp_start (local.get $ctx) (i32.const 200) (i32.const 0x140) (i32.const 0))
      (then (return (i32.const 574))))
    ;; 25: Content-Length fields that disagree are a bad argument
    (if (i32.ne (call $resp_start (local.get $ctx) (i32.const 200) (i32.const 0x1a0) (i32.const 50)) (i32.const -3))
      (then (return (i32.const 575))))
    ;; 14-15: a valid head, then a second one replacing it (404 -> 200)
    (if (call $resp_start (local.get $ctx) (i32.const 404) (i32.const 0x110) (i32.const 18))
      (then (return (i32.const 564))))
    (if (call $resp_start (local.get $ctx) (i32.const 200) (i32.const 0x110) (i32.const 18))
      (then (return (i32.const 565))))
    ;; 16: the one-byte body is read: eof, no bytes
    (if (i64.ne (call $body_read (local.get $ctx) (i32.const 0x20) (i32.const 16)) (i64.const 0x100000000))
      (then (return (i32.const 566))))
    ;; 17: limit 0 after the end still says eof
    (if (i64.ne (call $body_read (local.get $ctx) (i32.const 0x20) (i32.const 0)) (i64.const 0x100000000))
      (then (return (i32.const 567))))
    ;; 18: a flushed write sends the head
    (if (call $resp_write (local.get $ctx) (i32.const 0x170) (i32.const 2) (i32.const 0))
      (then (return (i32.const 568))))
    ;; 19: resp_start after the head went out: ERR_STATE
    (if (i32.ne (call $resp_start (local.get $ctx) (i32.const 200) (i32.const 0x100) (i32.const 4)) (i32.const -5))
      (then (return (i32.const -19))))
    ;; 20: an empty END write finishes the response
    (if (call $resp_write (local.get $ctx) (i32.const 0x170) (i32.const 0) (i32.const 1))
      (then (return (i32.const -20))))
    ;; 21: writing after END: ERR_STATE
    (if (i32.ne (call $resp_write (local.get $ctx) (i32.const 0x170) (i32.const 2) (i32.const 0)) (i32.const -5))
      (then (return (i32.const -21))))
    (i32.const 0))
)
