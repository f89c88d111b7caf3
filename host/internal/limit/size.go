package limit

import (
	"errors"
	"io"
	"net/http"
	"sync/atomic"
)

// Counts are the requests the limits refused, by limit, for metrics. A nil
// *Counts counts nothing.
type Counts struct {
	Rate      atomic.Int64 // 429
	ConnPerIP atomic.Int64 // 503 from Concurrency
	Body      atomic.Int64 // 413 (a Content-Length over the limit)
	Header    atomic.Int64 // 431
}

// Size rejects requests whose header block exceeds maxHeader bytes (431)
// or whose body exceeds maxBody bytes (413: at once when Content-Length
// says so, otherwise the body reader fails once the limit is crossed).
// Zero disables either check. Refusals are counted in counts (may be nil).
func Size(maxBody, maxHeader int64, counts *Counts, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if maxHeader > 0 && headerSize(r) > maxHeader {
			if counts != nil {
				counts.Header.Add(1)
			}
			http.Error(w, "431 request header fields too large", http.StatusRequestHeaderFieldsTooLarge)
			return
		}
		if maxBody > 0 && r.Body != nil && r.Body != http.NoBody {
			if r.ContentLength > maxBody {
				if counts != nil {
					counts.Body.Add(1)
				}
				w.Header().Set("Connection", "close")
				http.Error(w, "413 request body too large", http.StatusRequestEntityTooLarge)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
			if counts != nil {
				r.Body = &bodyCount{ReadCloser: r.Body, n: &counts.Body}
			}
		}
		next.ServeHTTP(w, r)
	})
}

func headerSize(r *http.Request) int64 {
	n := int64(len(r.Method) + len(r.RequestURI) + len(r.Host) + 16)
	for k, vs := range r.Header {
		for _, v := range vs {
			n += int64(len(k) + len(v) + 4)
		}
	}
	return n
}

// bodyCount counts a body without a declared length that crosses the limit,
// once, when the reader says so.
type bodyCount struct {
	io.ReadCloser
	n       *atomic.Int64
	counted bool
}

func (b *bodyCount) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var mbe *http.MaxBytesError
	if err != nil && !b.counted && errors.As(err, &mbe) {
		b.counted = true
		b.n.Add(1)
	}
	return n, err
}
