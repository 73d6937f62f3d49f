package pgvalue

import "encoding/hex"

// ParseBytea appends to dst the bytes bytea's text form denotes, in
// either output format: hex ("\x00ff", bytea_output = hex, the default)
// or escape ("a\000\\", bytea_output = escape: printable ASCII as is, a
// backslash doubled, other bytes as three octal digits).
func ParseBytea(dst, s []byte) ([]byte, error) {
	if len(s) >= 2 && s[0] == '\\' && s[1] == 'x' {
		out, err := hex.AppendDecode(dst, s[2:])
		if err != nil {
			return dst, syntaxError("bytea", s, "bad hex digits")
		}
		return out, nil
	}
	out := dst
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '\\':
			out = append(out, '\\')
			i++
		case i+3 < len(s) && s[i+1] >= '0' && s[i+1] <= '3' && isOctal(s[i+2]) && isOctal(s[i+3]):
			out = append(out, (s[i+1]-'0')<<6|(s[i+2]-'0')<<3|(s[i+3]-'0'))
			i += 3
		default:
			return dst, syntaxError("bytea", s, "a backslash not followed by a backslash or three octal digits")
		}
	}
	return out, nil
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// AppendBytea appends the hex text form of b ("\x" and two lowercase hex
// digits a byte), as byteaout prints it with bytea_output = hex.
func AppendBytea(dst, b []byte) []byte {
	return hex.AppendEncode(append(dst, '\\', 'x'), b)
}
