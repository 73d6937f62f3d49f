package secret

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/proto"
	"github.com/sluicedb/sluice/proto/prototest"
)

func TestResolveAndSeal(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("f@le p'w\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLUICE_TEST_PW", "e/nv:p@w")
	for _, c := range []struct{ in, want string }{
		{"postgres://u:${env:SLUICE_TEST_PW}@h/db", "postgres://u:e%2Fnv%3Ap%40w@h/db"},
		{"postgres://u:${file:" + pwFile + "}@h/db", "postgres://u:f%40le%20p%27w@h/db"},
		{"host=h password=${file:" + pwFile + "} user=u", `host=h password='f@le p\'w' user=u`},
		{"host=h password='${env:SLUICE_TEST_PW}'", `host=h password='e/nv:p@w'`},
		{"${env:SLUICE_TEST_PW}", "e/nv:p@w"},
		{"no references", "no references"},
	} {
		got, err := ResolveField(c.in)
		if err != nil || got != c.want {
			t.Errorf("ResolveField(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"${env:SLUICE_UNSET_VAR}", "${file:/nonexistent/x}", "${vault:x}", "${env:X", "${sealed:v1:0011223344556677:AAAA}"} {
		if _, err := ResolveField(bad); !errors.Is(err, ErrReference) && !errors.Is(err, ErrNoKey) {
			t.Errorf("ResolveField(%q): %v", bad, err)
		}
	}

	kr, err := OpenKeyring(dir)
	if err != nil {
		t.Fatal(err)
	}
	id, err := kr.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, KeyringFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("keyring file: %v %v", fi, err)
	}
	spec := proto.TaskSpec{
		Source:      proto.SourceSpec{DSN: "postgres://repl:p@ss/w?rd@10.0.0.5:5432/shop"},
		Destination: proto.NewDestination(prototest.Type, &prototest.Config{DSN: "host=h user=u password='s3 cr\\'t' dbname=d", Password: "${env:SLUICE_TEST_PW}"}),
		Alerts:      &proto.AlertSpec{Webhook: "https://hooks.example.com/x?token=t0k3n"},
	}
	orig := spec.Clone()
	sealed := spec.Clone()
	if err := SealSpec(&sealed, func(s string) (string, error) { return kr.Seal(id, s) }); err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"p@ss/w?rd", "s3 cr", "t0k3n"} {
		if strings.Contains(sealed.Source.DSN+prototest.ConfigOf(&sealed).DSN+sealed.Alerts.Webhook, leak) {
			t.Errorf("sealed spec holds %q: %+v", leak, sealed)
		}
	}
	if !strings.HasPrefix(sealed.Source.DSN, "postgres://repl:${sealed:v1:") || !strings.HasSuffix(sealed.Source.DSN, "@10.0.0.5:5432/shop") {
		t.Errorf("sealed DSN %q lost its shape", sealed.Source.DSN)
	}
	if prototest.ConfigOf(&sealed).Password != "${env:SLUICE_TEST_PW}" {
		t.Errorf("a reference was sealed: %q", prototest.ConfigOf(&sealed).Password)
	}
	if got := proto.RedactDSN(sealed.Source.DSN); got != "postgres://repl:xxxxx@10.0.0.5:5432/shop" {
		t.Errorf("redacted sealed DSN: %q", got)
	}
	open := sealed.Clone()
	if err := UnsealSpec(&open); err != nil {
		t.Fatal(err)
	}
	if open.Source.DSN != orig.Source.DSN || prototest.ConfigOf(&open).DSN != prototest.ConfigOf(&orig).DSN || open.Alerts.Webhook != orig.Alerts.Webhook {
		t.Errorf("unsealed spec differs:\n%+v\n%+v", open, orig)
	}
	// The sealed DSN resolves to the inline one, as it was written.
	if got, err := ResolveField(sealed.Source.DSN); err != nil || got != orig.Source.DSN {
		t.Errorf("resolve sealed: %q %v", got, err)
	}
	// Another node gets the keys through Export/Import only.
	other, _ := OpenKeyring(t.TempDir())
	if other.Has(id) {
		t.Fatal("a new keyring has the key")
	}
	if err := other.Import(kr.Export()); err != nil || !other.Has(id) {
		t.Fatalf("import: %v", err)
	}
	if err := os.Chmod(filepath.Join(dir, KeyringFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeyring(dir); err == nil {
		t.Fatal("a world-readable keyring opened")
	}
}
