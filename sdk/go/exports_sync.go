//go:build wasip1 && !wasmsrv_async

package wasmsrv

// The sync shape (SPEC §5): one request per call, host calls may block.

//go:wasmexport wasmsrv_abi_v1
func markerABIv1() {}

//go:wasmexport wasmsrv_mode_sync
func markerModeSync() {}

//go:wasmexport wasmsrv_handle
func exportHandle(ctx uint32) int32 { return serve(ctx) }

//go:wasmexport wasmsrv_on_start
func exportOnStart() int32 { return startInstance() }

//go:wasmexport wasmsrv_on_stop
func exportOnStop() int32 { return runHook("stop", app.onStop) }
