package jsonstr

import (
	"encoding/json"
	"testing"
)

func TestAppend(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain", `"plain"`},
		{"a\"b\\c\n\r\t\x01é🙂", `"a\"b\\c\n\r\t\u0001é🙂"`},
		{"bad \xff utf8", `"bad \ufffd utf8"`},
		{"", `""`},
	} {
		got := string(Append(nil, c.in))
		if got != c.want {
			t.Errorf("Append(%q) = %s, want %s", c.in, got, c.want)
		}
		if string(Append(nil, []byte(c.in))) != got {
			t.Errorf("Append of bytes differs for %q", c.in)
		}
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("%s is not JSON: %v", got, err)
		}
	}
}
