//go:build wasip1 && !wasmsrv_async

package wasmsrv

// The sync shape (SPEC §5): one request per call, host calls may block.

//lint:ignore U1000 exported to the host by go:wasmexport, which staticcheck does not count as a use
//go:wasmexport wasmsrv_abi_v1
func markerABIv1() {}

//lint:ignore U1000 exported to the host by go:wasmexport, which staticcheck does not count as a use
//go:wasmexport wasmsrv_mode_sync
func markerModeSync() {}

//lint:ignore U1000 exported to the host by go:wasmexport, which staticcheck does not count as a use
//go:wasmexport wasmsrv_handle
func exportHandle(ctx uint32) int32 { return serve(ctx) }

//lint:ignore U1000 exported to the host by go:wasmexport, which staticcheck does not count as a use
//go:wasmexport wasmsrv_on_start
func exportOnStart() int32 { return startInstance() }

//lint:ignore U1000 exported to the host by go:wasmexport, which staticcheck does not count as a use
//go:wasmexport wasmsrv_on_stop
func exportOnStop() int32 { return runHook("stop", app.onStop) }

// serve runs one request to completion on handle ctx (sync shape: one at a time,
// so one Request and ResponseWriter serve them all).
func serve(ctx uint32) int32 { return serveOn(ctx, &app.req, &app.resp) }

// serveOn runs one request to completion on handle ctx with r and w.
func serveOn(ctx uint32, r *Request, w *ResponseWriter) (code int32) {
	if code := prepare(ctx, r, w); code != 0 {
		return code
	}
	return handle(r, w)
}
