//go:build !unix

package testkit

import "io/fs"

func nlink(fs.FileInfo) string { return "?" }
