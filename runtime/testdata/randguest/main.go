// Command randguest answers every request with the number of requests its
// instance has served, then draws from each source of randomness a Go guest
// has, one per line, so that tests can check that the instances started from
// one snapshot do not share random state.
package main

import (
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math/rand"
	randv2 "math/rand/v2"
	"strings"
	_ "unsafe" // go:linkname

	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
)

//go:linkname runtimeRand runtime.rand
func runtimeRand() uint64

//go:linkname cheaprand runtime.cheaprand
func cheaprand() uint32

// served counts the requests of this instance: 1 in every answer of an
// instance made for one request.
var served int

// initMap is made at init, before the snapshot: its iteration order must still
// differ between instances.
var initMap = map[int]bool{}

// initChaCha is a math/rand/v2 generator seeded at init from the runtime's
// generator.
var initChaCha = randv2.New(randv2.NewChaCha8([32]byte{}))

func init() {
	for i := range 1024 {
		initMap[i] = true
	}
	var seed [32]byte
	for i := range 4 {
		binary.LittleEndian.PutUint64(seed[i*8:], randv2.Uint64())
	}
	initChaCha = randv2.New(randv2.NewChaCha8(seed))
	wasmsrv.HandleFunc(func(w *wasmsrv.ResponseWriter, r *wasmsrv.Request) {
		served++
		var b strings.Builder
		fmt.Fprintf(&b, "requests on this instance %d\n", served)
		fmt.Fprintf(&b, "math/rand %d\n", rand.Int63())
		fmt.Fprintf(&b, "math/rand/v2 %d\n", randv2.Uint64())
		var c [8]byte
		_, _ = crand.Read(c[:])
		fmt.Fprintf(&b, "crypto/rand %x\n", c)
		fmt.Fprintf(&b, "runtime.rand %d\n", runtimeRand())
		fmt.Fprintf(&b, "runtime.cheaprand %d %d\n", cheaprand(), cheaprand())
		fmt.Fprintf(&b, "maphash %d\n", maphash.String(maphash.MakeSeed(), "x"))
		fmt.Fprintf(&b, "map order %s\n", order(initMap))
		fresh := map[int]bool{}
		for i := range 1024 {
			fresh[i] = true
		}
		fmt.Fprintf(&b, "new map order %s\n", order(fresh))
		fmt.Fprintf(&b, "init chacha8 %d\n", initChaCha.Uint64())
		w.Header().Set("Content-Type", "text/plain")
		w.WriteString(b.String())
	})
}

// order gives the first key of eight iterations over m.
func order(m map[int]bool) string {
	var keys []string
	for range 8 {
		for k := range m {
			keys = append(keys, fmt.Sprint(k))
			break
		}
	}
	return strings.Join(keys, ",")
}

func main() {}
