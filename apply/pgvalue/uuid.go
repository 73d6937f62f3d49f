package pgvalue

import "encoding/hex"

// uuidGroups are the lengths, in bytes, of a UUID's hyphenated groups.
var uuidGroups = [...]int{4, 2, 2, 2, 6}

// ParseUUID parses uuid's text form, as uuid_out prints it: 32 hex
// digits in groups of 8-4-4-4-12 separated by hyphens
// ("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"). Upper-case digits are
// accepted; the other spellings uuid_in accepts (braces, no hyphens) are
// not output forms.
func ParseUUID(s []byte) ([16]byte, error) {
	var u [16]byte
	if len(s) != 36 {
		return u, syntaxError("uuid", s, "not 36 characters")
	}
	in, out := s, u[:0]
	for g, n := range uuidGroups {
		if g > 0 {
			if in[0] != '-' {
				return [16]byte{}, syntaxError("uuid", s, "hyphens misplaced")
			}
			in = in[1:]
		}
		var err error
		if out, err = hex.AppendDecode(out, in[:2*n]); err != nil {
			return [16]byte{}, syntaxError("uuid", s, "bad hex digits")
		}
		in = in[2*n:]
	}
	return u, nil
}

// AppendUUID appends u's text form: lowercase hex in groups of 8-4-4-4-12.
func AppendUUID(dst []byte, u [16]byte) []byte {
	in := u[:]
	for g, n := range uuidGroups {
		if g > 0 {
			dst = append(dst, '-')
		}
		dst = hex.AppendEncode(dst, in[:n])
		in = in[n:]
	}
	return dst
}
