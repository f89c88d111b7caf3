package static

import (
	"io"
	"sync"
	"time"
)

// Limits of the small-file cache: files up to maxSmall bytes are served
// from memory (a read, open, fstat and close saved per request); bigger
// ones go through sendfile.
const (
	maxSmall      = 64 << 10
	maxCacheBytes = 16 << 20
	maxEntries    = 16384
)

// fileInfo is what the handler knows about one path. Entries are never
// modified once published; a refresh replaces the pointer.
type fileInfo struct {
	err     error // from Stat: does not exist, escapes the root, permission
	dir     bool
	regular bool
	size    int64
	mod     time.Time
	etag    string
	data    []byte // contents, for small regular files
	checked time.Time
}

type fileCache struct {
	mu    sync.RWMutex
	m     map[string]*fileInfo
	bytes int64
}

// stat returns what is known about rel, asking the file system when the
// entry is older than cfg.Revalidate.
func (h *Handler) stat(rel string, now time.Time) *fileInfo {
	h.fc.mu.RLock()
	old := h.fc.m[rel]
	h.fc.mu.RUnlock()
	if old != nil && now.Sub(old.checked) < h.cfg.Revalidate {
		return old
	}
	fi := &fileInfo{checked: now}
	st, err := h.root.Stat(rel)
	if err != nil {
		fi.err = err
	} else {
		fi.dir, fi.regular, fi.size, fi.mod = st.IsDir(), st.Mode().IsRegular(), st.Size(), st.ModTime()
		fi.etag = etag(fi.size, fi.mod)
		if old != nil && old.data != nil && old.size == fi.size && old.mod.Equal(fi.mod) {
			fi.data = old.data
		} else if fi.regular && fi.size <= maxSmall && h.cfg.Revalidate > 0 {
			fi.data = h.read(rel, fi.size)
		}
	}
	if h.cfg.Revalidate < 0 {
		return fi
	}
	h.fc.mu.Lock()
	defer h.fc.mu.Unlock()
	if len(h.fc.m) >= maxEntries || h.fc.bytes+int64(len(fi.data)) > maxCacheBytes {
		// Crude but bounded: start over rather than track recency.
		h.fc.m, h.fc.bytes = map[string]*fileInfo{}, 0
	}
	if prev := h.fc.m[rel]; prev != nil {
		h.fc.bytes -= int64(len(prev.data))
	}
	h.fc.m[rel] = fi
	h.fc.bytes += int64(len(fi.data))
	return fi
}

// read loads a small file; nil (serve from disk) if it changed size meanwhile.
func (h *Handler) read(rel string, size int64) []byte {
	f, err := h.root.Open(rel)
	if err != nil {
		return nil
	}
	defer f.Close()
	buf := make([]byte, size+1)
	n, err := io.ReadFull(f, buf)
	if int64(n) != size || err != io.ErrUnexpectedEOF && err != nil {
		return nil
	}
	return buf[:n]
}
