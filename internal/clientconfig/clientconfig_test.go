package clientconfig

import (
	"os"
	"path/filepath"
	"testing"
)

func TestUpsertAndLookup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice", "config.yaml")
	if err := Upsert(path, Entry{URLs: []string{"127.0.0.1:7420/"}, Token: "a", DataDir: "/d1"}); err != nil {
		t.Fatal(err)
	}
	// A later start on the same address with another data directory
	// replaces the entry; another server gets its own.
	if err := Upsert(path, Entry{URLs: []string{"http://127.0.0.1:7420"}, Token: "b", DataDir: "/d2"}); err != nil {
		t.Fatal(err)
	}
	if err := Upsert(path, Entry{URLs: []string{"https://10.0.0.1:7421", "https://10.0.0.2:7421"}, Token: "c", CAFile: "/ca.pem"}); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Servers) != 2 {
		t.Fatalf("%d entries: %+v", len(f.Servers), f.Servers)
	}
	if e, ok := f.Lookup("HTTP://127.0.0.1:7420/"); !ok || e.Token != "b" || e.DataDir != "/d2" {
		t.Fatalf("lookup: %+v %v", e, ok)
	}
	if e, ok := f.Lookup("https://10.0.0.2:7421"); !ok || e.Token != "c" || e.CAFile != "/ca.pem" {
		t.Fatalf("lookup of a cluster's second node: %+v %v", e, ok)
	}
	if _, ok := f.Lookup("http://127.0.0.1:9999"); ok {
		t.Fatal("an unknown server found")
	}
	for _, p := range []string{path, filepath.Dir(path)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if want := os.FileMode(0o600); !fi.IsDir() && fi.Mode().Perm() != want || fi.IsDir() && fi.Mode().Perm() != 0o700 {
			t.Errorf("%s mode %o", p, fi.Mode().Perm())
		}
	}
	if err := Upsert(path, Entry{Token: "x"}); err == nil {
		t.Fatal("an entry without URLs")
	}
	if empty, err := Load(filepath.Join(t.TempDir(), "none.yaml")); err != nil || len(empty.Servers) != 0 {
		t.Fatalf("a missing file: %+v %v", empty, err)
	}
}
