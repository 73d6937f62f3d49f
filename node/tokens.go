package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sluicedb/sluice/coordinator"
	"github.com/sluicedb/sluice/internal/atomicfile"
	"github.com/sluicedb/sluice/internal/clientconfig"
)

// AdminTokenFile is the file in a data directory that holds the admin
// token the cluster made for itself at its first start (mode 0600).
const AdminTokenFile = "admin.token"

// tokenHint is what a 401 adds: where the first admin token is.
func tokenHint(dataDir string) string {
	return fmt.Sprintf("; the cluster's first admin token is in %s on the node that made it (the first leader; %s if it was this node), and in that user's client config",
		AdminTokenFile, filepath.Join(dataDir, AdminTokenFile))
}

// bootstrapAdmin makes the cluster's first admin token, once: the leader
// of a cluster that has none writes it beside its data directory's token
// file (admin.token.new) before the state records its hash, so it is
// never lost, and moves it into place once recorded, so a reader of
// admin.token never gets a token the cluster does not know yet. A leader
// that loses the race to another removes its file again.
func bootstrapAdmin(ctx context.Context, cc *ClusterConfig, coord *coordinator.Coordinator) (created bool, err error) {
	// One attempt at a time in this process: two would write the file
	// in turn, and the loser's cleanup would remove the winner's.
	bootstrapMu.Lock()
	defer bootstrapMu.Unlock()
	path := filepath.Join(cc.DataDir, AdminTokenFile)
	pending := path + ".new"
	finishPending(pending, path, coord)
	if !coord.IsLeader() || coord.Bootstrapped() {
		return false, nil
	}
	text, tok, err := coordinator.NewToken("bootstrap", coordinator.ScopeAdmin, time.Now())
	if err != nil {
		return false, err
	}
	tok.Bootstrap = true
	if err := atomicfile.Write(pending, []byte(text+"\n"), 0o600); err != nil {
		return false, fmt.Errorf("admin token: %w", err)
	}
	if err := coord.Apply(ctx, coordinator.CreateToken{Token: tok}); err != nil {
		if errors.Is(err, coordinator.ErrBootstrapped) {
			_ = os.Remove(pending)
			return false, nil
		}
		// It may still commit: the next round finishes or drops it.
		return false, fmt.Errorf("admin token: %w", err)
	}
	if err := os.Rename(pending, path); err != nil {
		return false, fmt.Errorf("admin token: %w", err)
	}
	return true, nil
}

// finishPending moves a token left by an interrupted bootstrap into place
// once the state knows it, and drops it once another token won.
func finishPending(pending, path string, coord *coordinator.Coordinator) {
	b, err := os.ReadFile(pending)
	if err != nil {
		return
	}
	if _, ok := coord.Authenticate(strings.TrimSpace(string(b))); ok {
		_ = os.Rename(pending, path)
	} else if coord.Bootstrapped() {
		_ = os.Remove(pending)
	}
}

var bootstrapMu sync.Mutex

// readAdminToken reads the data directory's admin token ("" when there is
// none, or it was revoked).
func readAdminToken(dataDir string, coord *coordinator.Coordinator) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, AdminTokenFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	text := strings.TrimSpace(string(b))
	if _, ok := coord.Authenticate(text); !ok {
		return "", nil
	}
	return text, nil
}

// writeClientEntry puts this cluster into the user's client config: the
// API URLs of this node and of its peers, the admin token from the data
// directory, and the CA when the API runs TLS. Nothing is written without
// a token here (another node started the cluster) or without a path.
func writeClientEntry(cc *ClusterConfig, coord *coordinator.Coordinator, apiAddr string) (string, error) {
	if cc.ClientConfig == "" {
		return "", nil
	}
	text, err := readAdminToken(cc.DataDir, coord)
	if err != nil || text == "" {
		return "", err
	}
	scheme := "http"
	var ca string
	if cc.TLS != nil {
		scheme = "https"
		if ca, err = filepath.Abs(cc.TLS.CA); err != nil {
			return "", err
		}
	}
	urls := []string{scheme + "://" + apiAddr}
	for _, p := range cc.Peers {
		if p.API != "" {
			urls = append(urls, scheme+"://"+p.API)
		}
	}
	dataDir, _ := filepath.Abs(cc.DataDir)
	if err := clientconfig.Upsert(cc.ClientConfig, clientconfig.Entry{URLs: urls, Token: text, CAFile: ca, DataDir: dataDir}); err != nil {
		return "", err
	}
	return cc.ClientConfig, nil
}
