package scheduler

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rewrite regenerates the expected outputs of testdata/*.txt, like
// etcd-raft's datadriven -rewrite. Read every rewritten expectation before
// committing it: the scripts are only worth what the review of their
// outputs was.
var rewrite = flag.Bool("rewrite", false, "rewrite the expected outputs in testdata/*.txt")

// A script is a sequence of blocks. A block is one or more command lines
// (blank and # comment lines before them belong to the block; "# ..." also
// ends a command line), then "----" and the expected output, which ends at a
// blank line or the end of the file. A block without "----" ends at a blank
// line and must produce no output.
type block struct {
	lines  []string // as written, up to the "----"
	first  int      // line number of the block's first line
	sep    bool     // has a "----" line
	want   []string // expected output
	closed bool     // ended by a blank line
}

func parseScript(text string) []*block {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	var blocks []*block
	b := &block{first: 1}
	hasCmd := false
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		switch {
		case strings.TrimSpace(line) == "----":
			b.sep = true
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != ""; i++ {
				b.want = append(b.want, lines[i])
			}
			b.closed = i < len(lines)
		case strings.TrimSpace(line) == "" && hasCmd:
			b.closed = true
		default:
			b.lines = append(b.lines, line)
			hasCmd = hasCmd || stripComment(line) != ""
			continue
		}
		blocks = append(blocks, b)
		b, hasCmd = &block{first: i + 2}, false
	}
	if len(b.lines) > 0 {
		blocks = append(blocks, b)
	}
	return blocks
}

func stripComment(line string) string {
	if i := strings.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	return strings.TrimSpace(line)
}

// render writes the blocks back, with got as the expected outputs.
func render(blocks []*block, got [][]string) string {
	var out []string
	for i, b := range blocks {
		out = append(out, b.lines...)
		if b.sep || len(got[i]) > 0 {
			out = append(out, "----")
			out = append(out, got[i]...)
		}
		if b.closed {
			out = append(out, "")
		}
	}
	return strings.Join(out, "\n") + "\n"
}

func TestScripts(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) { runScript(t, file) })
	}
}

func runScript(t *testing.T, file string) {
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	blocks := parseScript(string(text))
	h := newHarness()
	got := make([][]string, len(blocks))
	for i, b := range blocks {
		got[i] = runBlock(t, h, file, b)
		if !*rewrite && strings.Join(got[i], "\n") != strings.Join(b.want, "\n") {
			t.Errorf("%s:%d:\n%s\ngot:\n%s\nwant:\n%s", file, b.first,
				strings.Join(b.lines, "\n"), strings.Join(got[i], "\n"), strings.Join(b.want, "\n"))
		}
	}
	if *rewrite {
		if err := os.WriteFile(file, []byte(render(blocks, got)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// runBlock runs a block's commands and returns their output; an error in a
// command (a bad script, or a plan breaking an invariant) stops the script.
func runBlock(t *testing.T, h *harness, file string, b *block) []string {
	t.Helper()
	var out []string
	for j, line := range b.lines {
		line = stripComment(line)
		if line == "" {
			continue
		}
		lines, err := h.run(parseCommand(line))
		out = append(out, lines...)
		if err != nil {
			t.Fatalf("%s:%d: %s: %v\noutput so far:\n%s", file, b.first+j, line, err, strings.Join(out, "\n"))
		}
	}
	return out
}
