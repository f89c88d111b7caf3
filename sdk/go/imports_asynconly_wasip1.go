//go:build wasip1 && wasmsrv_async

package wasmsrv

// Host functions of the async shape only (SPEC §8.3): a sync build does not import
// them (a sync guest gets ERR_UNSUPPORTED or ERR_STATE from them anyway).

//go:wasmimport wasmsrv ctx_done
func ctxDone(ctx uint32, code int32) int32

//go:wasmimport wasmsrv timer_set
func timerSet(id uint32, delayMS int64) int32

//go:wasmimport wasmsrv timer_cancel
func timerCancel(id uint32) int32

//go:wasmimport wasmsrv set_backpressure
func setBackpressure(on uint32) int32
