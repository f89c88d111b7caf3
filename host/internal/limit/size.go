package limit

import (
	"net/http"
)

// Size rejects requests whose header block exceeds maxHeader bytes (431)
// or whose body exceeds maxBody bytes (413: at once when Content-Length
// says so, otherwise the body reader fails once the limit is crossed).
// Zero disables either check.
func Size(maxBody, maxHeader int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if maxHeader > 0 && headerSize(r) > maxHeader {
			http.Error(w, "431 request header fields too large", http.StatusRequestHeaderFieldsTooLarge)
			return
		}
		if maxBody > 0 && r.Body != nil && r.Body != http.NoBody {
			if r.ContentLength > maxBody {
				w.Header().Set("Connection", "close")
				http.Error(w, "413 request body too large", http.StatusRequestEntityTooLarge)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
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
