package testenv

import (
	"errors"
	"os"
	"testing"

	"github.com/sluicedb/sluice/internal/testenv/dorisemu/emu"
)

// NewDoris starts a Doris emulator for a test and closes it at cleanup. It
// skips the test only when MariaDB, which holds the emulator's data, is
// not installed (make deps installs it).
func NewDoris(t testing.TB, opts ...func(*emu.Options)) *emu.Emulator {
	t.Helper()
	var o emu.Options
	o.Dir = t.TempDir()
	for _, f := range opts {
		f(&o)
	}
	e, err := emu.Start(o)
	if errors.Is(err, emu.ErrNoMariaDB) {
		t.Skipf("Doris emulator unavailable: %v", err)
	}
	if err != nil {
		t.Fatalf("start Doris emulator: %v", err)
	}
	t.Cleanup(e.Close)
	return e
}

// DorisURL is the Doris FE a test runs against: a real cluster when
// SLUICE_DORIS_URL is set (with SLUICE_DORIS_USER, default root, and
// SLUICE_DORIS_PASSWORD), else a fresh emulator as root.
func DorisURL(t testing.TB) (url, user, password string) {
	t.Helper()
	if u := os.Getenv("SLUICE_DORIS_URL"); u != "" {
		user = os.Getenv("SLUICE_DORIS_USER")
		if user == "" {
			user = "root"
		}
		return u, user, os.Getenv("SLUICE_DORIS_PASSWORD")
	}
	return NewDoris(t).FEURL(), "root", ""
}
