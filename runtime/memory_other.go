//go:build !(linux || darwin || freebsd)

package runtime

import "github.com/tetratelabs/wazero/experimental"

// memoryAllocator is wazero's default (Go heap) where mmap is not wired up.
func memoryAllocator() experimental.MemoryAllocator { return nil }
