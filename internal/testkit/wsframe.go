package testkit

import "encoding/binary"

// WSFrame describes one client WebSocket frame as it goes on the wire, for
// tests that speak RFC 6455 from a raw socket.
type WSFrame struct {
	Fin      bool
	RSV      byte // RSV1..3 as 0x4, 0x2, 0x1
	Op       byte
	Payload  []byte
	Unmasked bool
	LenForm  int   // 0: shortest; 126 or 127: force that length encoding
	Declared int64 // with NoBody: the length announced, the payload never sent
	NoBody   bool
}

// Bytes encodes f: RFC 6455 §5.2, written out by hand, masked with a fixed key
// unless Unmasked.
func (f WSFrame) Bytes() []byte {
	mask := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	b0 := f.Op & 0xf
	if f.Fin {
		b0 |= 0x80
	}
	b0 |= (f.RSV & 0x7) << 4
	n := int64(len(f.Payload))
	if f.NoBody {
		n = f.Declared
	}
	out := []byte{b0}
	maskBit := byte(0x80)
	if f.Unmasked {
		maskBit = 0
	}
	form := f.LenForm
	if form == 0 {
		switch {
		case n < 126:
		case n <= 0xffff:
			form = 126
		default:
			form = 127
		}
	}
	switch form {
	case 126:
		out = append(out, maskBit|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	case 127:
		out = append(out, maskBit|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	default:
		out = append(out, maskBit|byte(n))
	}
	if f.NoBody {
		return append(out, mask[:]...)
	}
	if f.Unmasked {
		return append(out, f.Payload...)
	}
	out = append(out, mask[:]...)
	for i, c := range f.Payload {
		out = append(out, c^mask[i%4])
	}
	return out
}
