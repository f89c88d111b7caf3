package wasmhttp

import "context"

type rootPathKey struct{}

func withRootPath(ctx context.Context, p string) context.Context {
	return context.WithValue(ctx, rootPathKey{}, p)
}

// RootPath returns the prefix the host stripped before routing the request to this
// app (ASGI root_path), or "" when the app is mounted at /.
func RootPath(ctx context.Context) string {
	s, _ := ctx.Value(rootPathKey{}).(string)
	return s
}
