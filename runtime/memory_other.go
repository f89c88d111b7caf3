//go:build !linux

package runtime

import "github.com/tetratelabs/wazero/experimental"

// newMemoryAllocator returns nil elsewhere: guest memories then use wazero's
// default allocator (the Go heap).
func newMemoryAllocator() experimental.MemoryAllocator { return nil }
