//go:build !linux

package runtime

import (
	"errors"

	"github.com/tetratelabs/wazero/experimental"
)

const snapshotsSupported = false

type memImage struct{ size uint64 }

func newMemImage([]byte) (*memImage, error) {
	return nil, errors.New("snapshots need Linux (memfd and private file mappings)")
}

func (*memImage) close() {}

func (*memImage) allocator(experimental.MemoryAllocator) experimental.MemoryAllocator { return nil }
