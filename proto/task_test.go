package proto

import "testing"

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:p@h/db":                    "postgres://u:xxxxx@h/db",
		"host=h password=secret dbname=d":        "host=h password=xxxxx dbname=d",
		"postgres://u@h/db?password=s&sslmode=x": "postgres://u@h/db?password=xxxxx&sslmode=x",
		// Unencoded characters in the password leave no tail behind.
		"postgres://u:p@ss@h:5432/db":            "postgres://u:xxxxx@h:5432/db",
		"postgres://u:a/b?c#d@h/db":              "postgres://u:xxxxx@h/db",
		"postgresql://u:%40x@h/db?sslpassword=k": "postgresql://u:xxxxx@h/db?sslpassword=xxxxx",
		"host=h password='se cr\\'et' dbname=d":  "host=h password=xxxxx dbname=d",
		"host=h PASSWORD = s3 user=u":            "host=h PASSWORD = xxxxx user=u",
		"host=h password='unterminated dbname=d": "host=h password=xxxxx",
		"host=h password=a\\ b user=u":           "host=h password=xxxxx user=u",
		"garbage without equals password":        "xxxxx",
		"postgres://h/db":                        "postgres://h/db",
	} {
		if got := RedactDSN(in); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"https://hooks.example.com/sluice?token=abc&x=1": "https://hooks.example.com/sluice?token=xxxxx&x=xxxxx",
		"https://u:pw@hooks.example.com/x":               "https://u:xxxxx@hooks.example.com/x",
		"not a url":                                      "xxxxx",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		`cannot parse "postgres://u:p@ss@h/db": bad`:            `cannot parse "postgres://u:xxxxx@h/db": bad`,
		"failed: host=h password=s3cret user=u":                 "failed: host=h password=xxxxx user=u",
		"password authentication failed for user repl":          "password authentication failed for user repl",
		"dial tcp: postgres://u:pw@h/db and https://a:b@c/?k=v": "dial tcp: postgres://u:xxxxx@h/db and https://a:xxxxx@c/?k=v",
	} {
		if got := RedactText(in); got != want {
			t.Errorf("RedactText(%q) = %q, want %q", in, got, want)
		}
	}
}
