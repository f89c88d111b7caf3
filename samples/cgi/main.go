// Command cgi is an ordinary Go program, with no wasmsrv SDK, that wasmsrv serves in
// CGI mode (WAGI semantics): the request arrives as CGI environment variables and the
// body on stdin; the response is what it prints: CGI headers, a blank line, the body.
//
//	GOOS=wasip1 GOARCH=wasm go build -o cgi.wasm ./samples/cgi
//	wasmsrv run cgi.wasm
//
// samples/c-cgi is the same program in C; both answer identically.
package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

func main() {
	body, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cgi: reading body:", err)
		os.Exit(1)
	}
	query := os.Getenv("QUERY_STRING")
	if strings.HasPrefix(query, "redirect=") {
		// A Location with no Status is a redirect (RFC 3875 §6.2.3); the server sends 302.
		fmt.Printf("Location: %s\n\n", strings.TrimPrefix(query, "redirect="))
		return
	}
	status := "200 OK"
	if s, ok := strings.CutPrefix(query, "status="); ok {
		if n, err := strconv.Atoi(s); err == nil && n >= 200 && n <= 599 {
			status = s + " Custom"
		}
	}
	fmt.Fprintln(os.Stderr, "cgi: serving", os.Getenv("REQUEST_METHOD"), os.Getenv("PATH_INFO"))
	fmt.Printf("Status: %s\n", status)
	fmt.Print("Content-Type: text/plain; charset=utf-8\n")
	fmt.Print("X-Cgi: 1\n\n")
	for _, k := range []string{"REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
		"CONTENT_LENGTH", "SERVER_PROTOCOL", "GATEWAY_INTERFACE", "HTTP_X_TEST"} {
		fmt.Printf("%s=%s\n", k, os.Getenv(k))
	}
	fmt.Printf("body=%d\n", len(body))
	os.Stdout.Write(body)
}
