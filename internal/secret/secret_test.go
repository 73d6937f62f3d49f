package secret

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestScrub(t *testing.T) {
	pw := "p@ss:w/rd x%"
	Register(pw, "ab") // too short to scrub from text
	for _, in := range []string{
		"failed: postgres://u:" + pw + "@h/db",
		"escaped: postgres://u:p%40ss%3Aw%2Frd%20x%25@h",
		"query: ?password=p%40ss%3Aw%2Frd+x%25",
	} {
		if out := Scrub(in); strings.Contains(out, "rd x") || strings.Contains(out, "w%2Frd") || !strings.Contains(out, Mask) {
			t.Errorf("Scrub(%q) = %q", in, out)
		}
	}
	if got := Scrub("about a tab"); got != "about a tab" {
		t.Errorf("a short secret was scrubbed from text: %q", got)
	}

	var buf bytes.Buffer
	log := slog.New(Handler(slog.NewTextHandler(&buf, nil))).With("dsn", "postgres://u:"+pw+"@h")
	log.Info("connect "+pw, "err", errors.New("bad "+pw), slog.Group("g", "v", pw))
	if strings.Contains(buf.String(), "rd x") {
		t.Fatalf("the log holds the secret: %s", buf.String())
	}
}
