// Command app is an ordinary Go program, with no wasmsrv SDK, that wasmsrv serves
// CGI-style: each request runs the program in a fresh instance, with the request
// in CGI environment variables (REQUEST_METHOD, PATH_INFO, QUERY_STRING, HTTP_*…)
// and its body on stdin; what it prints — headers, a blank line, the body — is the
// response. Any language that compiles to a WASI command works the same way.
//
//	wasmsrv run .
//	curl -d 'some bytes' 'localhost:8080/path?x=1'
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	body, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Print("Status: 400 Bad Request\n\n")
		return
	}
	fmt.Print("Content-Type: text/plain; charset=utf-8\n\n")
	fmt.Printf("Hello from a CGI command! %s %s?%s with %d bytes of body\n",
		os.Getenv("REQUEST_METHOD"), os.Getenv("PATH_INFO"), os.Getenv("QUERY_STRING"), len(body))
}
