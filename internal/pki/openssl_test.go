package pki

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestOpensslRecipe runs the openssl recipe of deploy/tls/README.md (its
// sh blocks, in order) and checks Sluice takes the result: Load accepts
// the node's files, LoadCA the CA, and an openssl-made node and a
// Go-made one complete mutual TLS both ways.
func TestOpensslRecipe(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "deploy", "tls", "README.md"))
	if err != nil {
		t.Skipf("the recipe: %v", err)
	}
	var script strings.Builder
	for _, m := range regexp.MustCompile("(?ms)^```sh\n(.*?)^```").FindAllStringSubmatch(string(readme), -1) {
		script.WriteString(m[1])
	}
	if script.Len() == 0 {
		t.Fatal("no sh block in deploy/tls/README.md")
	}
	dir := t.TempDir()
	cmd := exec.Command("sh", "-e", "-c", script.String())
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the recipe failed: %v\n%s", err, out)
	} else {
		t.Logf("recipe output:\n%s", out)
	}
	for name, want := range map[string]os.FileMode{"ca-key.pem": 0o600, "n1-key.pem": 0o600} {
		if got := mode(t, filepath.Join(dir, name)); got != want {
			t.Errorf("%s: mode %v, want %v", name, got, want)
		}
	}

	n1, err := Load(filepath.Join(dir, CAFile), filepath.Join(dir, "n1.pem"), filepath.Join(dir, "n1-key.pem"))
	if err != nil {
		t.Fatalf("Load of the openssl files: %v", err)
	}
	if n1.ID != "n1" {
		t.Fatalf("id %q", n1.ID)
	}
	ca, err := LoadCA(dir)
	if err != nil {
		t.Fatalf("LoadCA of the openssl CA: %v", err)
	}
	n2 := nodeConfig(t, ca, "n2")

	// The recipe's n1 is for 10.0.0.5 and n1.example.com: dial 127.0.0.1
	// by the name.
	srv, cli := handshake(t, n1.ServerTLS(), n2.ClientTLS("n1.example.com"))
	if srv.err != nil || cli.err != nil {
		t.Fatalf("n2 to n1: server %v, client %v", srv.err, cli.err)
	}
	if id, _ := n1.PeerNodeID(&srv.state); id != "n2" {
		t.Errorf("n1 sees %q", id)
	}
	if id, _ := n2.PeerNodeID(&cli.state); id != "n1" {
		t.Errorf("n2 sees %q", id)
	}
	srv, cli = handshake(t, n2.ServerTLS(), n1.ClientTLS("127.0.0.1"))
	if srv.err != nil || cli.err != nil {
		t.Fatalf("n1 to n2: server %v, client %v", srv.err, cli.err)
	}
	if id, _ := n2.PeerNodeID(&srv.state); id != "n1" {
		t.Errorf("n2 sees %q", id)
	}
}
