package reqlog

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

type logWriter struct {
	http.ResponseWriter
	f Fields
}

func (l *logWriter) LogFields() *Fields { return &l.f }

type wrapper struct{ http.ResponseWriter }

func (w wrapper) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type loop struct{ http.ResponseWriter }

func (l *loop) Unwrap() http.ResponseWriter { return l }

func TestOf(t *testing.T) {
	lw := &logWriter{ResponseWriter: httptest.NewRecorder()}
	if f := Of(wrapper{wrapper{lw}}); f != &lw.f {
		t.Fatalf("Of through two wrappers = %p, want %p", f, &lw.f)
	}
	Of(wrapper{lw}).App = "a"
	if lw.f.App != "a" {
		t.Error("a field set through Of is not the writer's")
	}
	if f := Of(httptest.NewRecorder()); f != nil {
		t.Errorf("Of without an access log = %v", f)
	}
	if f := Of(&loop{}); f != nil {
		t.Errorf("Of on a cycle = %v", f)
	}
}
