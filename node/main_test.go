package node_test

import (
	"os"
	"testing"

	"github.com/sluicedb/sluice/internal/sluicetest"
)

// TestMain removes the sluice binary the process tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	sluicetest.RemoveBinary()
	os.Exit(code)
}
