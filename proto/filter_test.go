package proto

import (
	"errors"
	"testing"
)

func TestCheckFilter(t *testing.T) {
	good := []string{
		"region = 'eu'",
		"note <> ';'",
		"note <> ')'",
		`"weird;col)" > 3`,
		"name = 'it''s'",
		"name = E'it\\'s ) ;'",
		"name = $$ ) ; -- $$",
		"name = $q$ ) $ ; $q$",
		"(a > 1) AND (b < 2 OR (c = 3))",
		"amount::numeric > 10",
		"ts > now() - interval '1 day'",
		"x = 'a--b' AND y = '/*'",
	}
	for _, f := range good {
		if err := CheckFilter(f); err != nil {
			t.Errorf("CheckFilter(%q): %v", f, err)
		}
		if _, err := FilterCondition(f); err != nil {
			t.Errorf("FilterCondition(%q): %v", f, err)
		}
	}
	bad := []string{
		"",
		"   ",
		"true); CREATE TABLE public.pwned_raw(x int); --",
		"true) UNION SELECT usename FROM pg_user WHERE (true",
		"a = 1; DROP TABLE t",
		"a = 1 -- the rest",
		"a = 1 /* c */",
		"(a = 1",
		"a = 1)",
		"name = 'open",
		`"open = 1`,
		"name = $$ open",
		"name = E'\\' ) ; x",
		"a\x00b",
	}
	for _, f := range bad {
		if err := CheckFilter(f); !errors.Is(err, ErrBadFilter) {
			t.Errorf("CheckFilter(%q) = %v, want ErrBadFilter", f, err)
		}
	}
}
