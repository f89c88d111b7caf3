// Package fetch is the guest binding of the wasmsrv `http` plugin
// (plugins/http/ABI.md): outbound HTTP requests to hosts the operator allow-listed
// (`wasmsrv run --grant http --http-allow api.example.com`). Anything else fails
// with ErrDenied. In a sync app a request blocks until the response is read; in an
// async app only the calling goroutine waits.
//
//	resp, err := fetch.Get("https://api.example.com/v1/items")
//
// Transport plugs the same calls into net/http: &http.Client{Transport: fetch.Transport{}}.
package fetch

import (
	"encoding/binary"
	"time"
	"unsafe"

	"github.com/wasmsrv/wasmsrv/abi"
	"github.com/wasmsrv/wasmsrv/plugins/pluginabi"
	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
)

// Error is a status returned by the host.
type Error int32

func (e Error) Error() string { return "fetch: " + pluginabi.StatusText(int32(e)) }

// Errors the host returns.
const (
	// ErrDenied: the host is not on the app's allow list (or resolves to a private
	// address that is not).
	ErrDenied = Error(pluginabi.ErrDenied)
	// ErrTimeout: the request took longer than the app's outbound timeout.
	ErrTimeout = Error(pluginabi.ErrTimeout)
	// ErrTooLarge: the response body is over the app's limit (or the request body is).
	ErrTooLarge = Error(pluginabi.ErrTooLarge)
	// ErrUnavailable: connecting or reading failed.
	ErrUnavailable = Error(pluginabi.ErrUnavailable)
	// ErrBadArgument: a malformed URL (only http and https), method or header.
	ErrBadArgument = Error(pluginabi.ErrBadArgument)
	// ErrQuota: too many responses held open.
	ErrQuota = Error(pluginabi.ErrQuota)
)

// Response is a complete response (the host read the whole body within its limit).
type Response struct {
	Status int
	// Header holds the response headers with lower-case names, in arrival order.
	Header []abi.Header
	Body   []byte
}

// HeaderValue returns the first value of the header called name (lower case).
func (r *Response) HeaderValue(name string) string {
	for _, h := range r.Header {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

// Request is an outbound request.
type Request struct {
	Method string // default GET
	URL    string
	Header []abi.Header
	Body   []byte
}

var (
	reqBuf  []byte
	respBuf = make([]byte, 16<<10)
)

func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// Do sends req and returns the whole response.
func Do(req *Request) (*Response, error) {
	b := pluginabi.AppendItem(pluginabi.AppendItem(reqBuf[:0], req.Method), req.URL)
	for _, h := range req.Header {
		b = pluginabi.AppendItem(pluginabi.AppendItem(b, h.Name), h.Value)
	}
	reqBuf = b
	h := send(ptr(b), uint32(len(b)), ptr(req.Body), uint32(len(req.Body)))
	if h < 0 {
		return nil, Error(h)
	}
	defer closeResp(uint32(h))
	wait := time.Millisecond
	for {
		n := response(uint32(h), ptr(respBuf), uint32(len(respBuf)))
		if n == int64(pluginabi.ErrWouldBlock) {
			// Async shape: the host runs the request on its own and posts a
			// completion event when it is done (the host's timeout bounds it);
			// this goroutine parks meanwhile, the instance's other connections run.
			switch rc := wasmsrv.AwaitPlugin(notify, uint32(h), -1); rc {
			case 0:
			case pluginabi.ErrUnsupported:
				// A lifespan hook: no event can come, so look again after a sleep.
				wasmsrv.Sleep(wait)
				wait = min(2*wait, 20*time.Millisecond)
			default:
				return nil, Error(rc)
			}
			continue
		}
		if n < 0 {
			return nil, Error(n)
		}
		if int(n) > len(respBuf) {
			respBuf = make([]byte, n)
			continue
		}
		return decode(respBuf[:n])
	}
}

func decode(b []byte) (*Response, error) {
	if len(b) < 8 {
		return nil, ErrBadArgument
	}
	status := binary.LittleEndian.Uint32(b)
	hl := binary.LittleEndian.Uint32(b[4:])
	if uint64(hl) > uint64(len(b)-8) {
		return nil, ErrBadArgument
	}
	hs, err := abi.DecodeHeaderBlock(string(b[8:8+hl]), nil)
	if err != nil {
		return nil, ErrBadArgument
	}
	return &Response{Status: int(status), Header: hs, Body: append([]byte(nil), b[8+hl:]...)}, nil
}

// Get fetches url.
func Get(url string) (*Response, error) { return Do(&Request{Method: "GET", URL: url}) }

// Post sends body to url with the given content type.
func Post(url, contentType string, body []byte) (*Response, error) {
	return Do(&Request{Method: "POST", URL: url, Body: body,
		Header: []abi.Header{{Name: "content-type", Value: contentType}}})
}
