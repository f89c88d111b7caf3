package runtime

import (
	"context"
	"io"
	"testing"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// BenchmarkCommandRun is one CGI-mode request without HTTP: a fresh instance of a C
// command that prints a hello response, with a CGI-sized environment.
func BenchmarkCommandRun(b *testing.B) {
	c, _ := loadCommand(b, "../bench/apps/cgi_hello.wasm", PoolConfig{Workers: 1})
	env := []string{
		"GATEWAY_INTERFACE=CGI/1.1", "SERVER_SOFTWARE=wasmsrv", "SERVER_PROTOCOL=HTTP/1.1", "SERVER_NAME=127.0.0.1",
		"SERVER_PORT=8080", "REQUEST_METHOD=GET", "REQUEST_URI=/", "REQUEST_SCHEME=http", "SCRIPT_NAME=",
		"PATH_INFO=/", "X_RAW_PATH_INFO=/", "QUERY_STRING=", "REMOTE_ADDR=127.0.0.1", "REMOTE_HOST=127.0.0.1",
		"REMOTE_PORT=40000", "HTTP_HOST=127.0.0.1:8080", "HTTP_USER_AGENT=wrk", "HTTP_ACCEPT=*/*",
	}
	b.ReportAllocs()
	cpu0 := testkit.CPUTime(b)
	for b.Loop() {
		if err := c.Run(context.Background(), CommandIO{Env: env, Stdout: io.Discard}); err != nil {
			b.Fatal(err)
		}
	}
	// Process CPU time (GC included) is steadier than wall time on a busy machine.
	testkit.ReportCPU(b, cpu0)
}
