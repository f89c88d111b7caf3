package fetch

import "github.com/wasmsrv/wasmsrv/abi"

func header(name, value string) abi.Header { return abi.Header{Name: name, Value: value} }
