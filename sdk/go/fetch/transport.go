package fetch

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
)

// Transport is an http.RoundTripper over the http plugin, so code written for
// net/http clients runs in a guest: &http.Client{Transport: fetch.Transport{}}.
// The request body is read fully before sending; the response arrives complete.
type Transport struct{}

// RoundTrip implements http.RoundTripper.
func (Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	req := &Request{Method: r.Method, URL: r.URL.String()}
	if r.Host != "" && r.Host != r.URL.Host {
		req.Header = append(req.Header, header("host", r.Host))
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header = append(req.Header, header(k, v))
		}
	}
	if r.Body != nil {
		b, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err != nil {
			return nil, err
		}
		req.Body = b
	}
	resp, err := Do(req)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	for _, kv := range resp.Header {
		h.Add(kv.Name, kv.Value)
	}
	return &http.Response{
		Status: strconv.Itoa(resp.Status) + " " + http.StatusText(resp.Status), StatusCode: resp.Status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h,
		Body: io.NopCloser(bytes.NewReader(resp.Body)), ContentLength: int64(len(resp.Body)), Request: r,
	}, nil
}
