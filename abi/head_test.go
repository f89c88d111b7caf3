package abi

import (
	"bytes"
	"testing"
)

func TestHeadRoundTrip(t *testing.T) {
	var e HeadEncoder
	e.Reset(KindHTTP, 2, 0, HeadFlagTLS, 42)
	fields := []string{"POST", "https", "/a%20b/ü", "x=1&y=2", "/api", "example.com", "[::1]:5000", "127.0.0.1:443", "r1"}
	for _, f := range fields {
		e.Field(f)
	}
	e.Header("Content-Type", "text/plain")
	e.Header("X-Dup", "1")
	e.Header("X-Dup", "2")
	e.Header("x-bin", "\x00\xff")
	var h Head
	if err := DecodeHead(string(e.Bytes()), &h); err != nil {
		t.Fatal(err)
	}
	if h.Kind != KindHTTP || h.ProtoMajor != 2 || h.Flags != HeadFlagTLS || h.ContentLength != 42 {
		t.Fatalf("fixed part: %+v", h)
	}
	for i, f := range fields {
		if h.Fields[i] != f {
			t.Errorf("field %d = %q, want %q", i, h.Fields[i], f)
		}
	}
	want := []Header{{"content-type", "text/plain"}, {"x-dup", "1"}, {"x-dup", "2"}, {"x-bin", "\x00\xff"}}
	if len(h.Headers) != len(want) {
		t.Fatalf("headers %v", h.Headers)
	}
	for i := range want {
		if h.Headers[i] != want[i] {
			t.Errorf("header %d = %v, want %v", i, h.Headers[i], want[i])
		}
	}
}

func TestHeadIgnoresUnknownTrailingFields(t *testing.T) {
	var e HeadEncoder
	e.Reset(KindHTTP, 1, 1, 0, -1)
	for i := 0; i < NumFields+2; i++ { // a newer host with two more fields
		e.Field("f")
	}
	e.Header("a", "b")
	var h Head
	if err := DecodeHead(string(e.Bytes()), &h); err != nil {
		t.Fatal(err)
	}
	if h.ContentLength != -1 || len(h.Headers) != 1 || h.Headers[0].Value != "b" {
		t.Fatalf("%+v", h)
	}
}

func TestDecodeRejectsMalformed(t *testing.T) {
	var e HeadEncoder
	e.Reset(KindHTTP, 1, 1, 0, 0)
	e.Field("GET")
	e.Header("a", "b")
	good := bytes.Clone(e.Bytes())
	cases := map[string][]byte{
		"empty":       nil,
		"short":       good[:10],
		"format":      append([]byte{9}, good[1:]...),
		"truncated":   good[:len(good)-1],
		"trailing":    append(bytes.Clone(good), 0),
		"huge count":  func() []byte { b := bytes.Clone(good); b[20] = 0xff; b[21] = 0xff; b[22] = 0xff; return b }(),
		"huge strlen": func() []byte { b := bytes.Clone(good); b[24+3] = 0x7f; return b }(),
	}
	for name, b := range cases {
		var h Head
		if err := DecodeHead(string(b), &h); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func TestHeaderBlock(t *testing.T) {
	hs := []Header{{"content-type", "a"}, {"set-cookie", "1"}, {"set-cookie", "2"}}
	b := AppendHeaderBlock(nil, hs)
	got, err := DecodeHeaderBlock(string(b), nil)
	if err != nil || len(got) != 3 || got[2] != hs[2] {
		t.Fatalf("%v %v", got, err)
	}
	var n int
	if err := WalkHeaderBlock(b, func(name, value []byte) error { n++; return nil }); err != nil || n != 3 {
		t.Fatalf("walk: %d %v", n, err)
	}
	if err := WalkHeaderBlock(b[:len(b)-1], func(_, _ []byte) error { return nil }); err == nil {
		t.Fatal("truncated block accepted")
	}
}

func FuzzDecodeHead(f *testing.F) {
	var e HeadEncoder
	e.Reset(KindHTTP, 1, 1, 0, 0)
	e.Field("GET")
	e.Header("a", "b")
	f.Add(e.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Head
		_ = DecodeHead(string(b), &h) // must never panic
		_ = WalkHeaderBlock(b, func(_, _ []byte) error { return nil })
	})
}
