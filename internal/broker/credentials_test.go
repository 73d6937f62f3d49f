package broker

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateCredentials(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // missing: created 0700
	c, err := LoadOrCreateCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.User != "sluice" {
		t.Fatalf("user %q", c.User)
	}
	pw, err := base64.RawURLEncoding.DecodeString(c.Password)
	if err != nil || len(pw) != 32 {
		t.Fatalf("password %q: %d bytes, %v", c.Password, len(pw), err)
	}
	if strings.Contains(c.String(), c.Password) {
		t.Fatal("String shows the password")
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode %04o", st.Mode().Perm())
	}
	path := filepath.Join(dir, "nats-credentials.json")
	st, err = os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file mode %04o", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("data dir holds %v, want only the credentials file", entries)
	}

	again, err := LoadOrCreateCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again != c {
		t.Fatal("second call made new credentials instead of reusing the file")
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = LoadOrCreateCredentials(dir)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("0644 file: %v, want an error saying chmod 600", err)
	}
	if strings.Contains(err.Error(), c.Password) {
		t.Fatal("error shows the password")
	}

	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"user":"sluice"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateCredentials(dir); err == nil {
		t.Fatal("file without a password accepted")
	}
}

func TestNewCredentialsDiffer(t *testing.T) {
	a, b := testCreds(t), testCreds(t)
	if a.Password == b.Password {
		t.Fatal("two NewCredentials share a password")
	}
}
