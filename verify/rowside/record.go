package rowside

import (
	"crypto/md5"
	"encoding/binary"
	"strings"
)

// recordText is the row's record as record_out prints ROW(...)::text:
// items in parentheses, comma separated, NULL as nothing, an item quoted
// when it is empty or holds a quote, a backslash, a parenthesis, a comma
// or white space, with quotes and backslashes doubled inside.
func recordText(items []*string) string {
	var b strings.Builder
	b.WriteByte('(')
	for i, item := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		if item == nil {
			continue
		}
		s := *item
		if s != "" && !strings.ContainsAny(s, "\"\\(), \t\n\r\v\f") {
			b.WriteString(s)
			continue
		}
		b.WriteByte('"')
		for j := 0; j < len(s); j++ {
			if s[j] == '"' || s[j] == '\\' {
				b.WriteByte(s[j])
			}
			b.WriteByte(s[j])
		}
		b.WriteByte('"')
	}
	b.WriteByte(')')
	return b.String()
}

// legacyHash is pgverify's md5 row hash: the first 64 bits of the md5 of
// the record's text as a signed bigint,
// ('x' || substr(md5(record), 1, 16))::bit(64)::bigint.
func legacyHash(record string) int64 {
	sum := md5.Sum([]byte(record))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}
