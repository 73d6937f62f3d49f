package node

import (
	"context"
	"errors"
)

// Up runs a single-node cluster until ctx is cancelled (SIGTERM), then
// stops gracefully. Started again on the same DataDir it resumes its tasks.
func Up(ctx context.Context, cfg Config) error {
	return errors.New("not implemented yet")
}
