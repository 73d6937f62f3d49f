package pgvalue

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/sluicedb/sluice/internal/testenv"
)

// bytea in both output formats parses to the bytes of its binary send
// form; AppendBytea prints the hex format back.
func TestParseByteaAgainstBinary(t *testing.T) {
	conn := connect(t)
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	literals := []string{``, `\x00`, `\x00ff10`, `\x` + hex.EncodeToString(every), `a\\b`, `\x5c78`, `\x7f80`, `plain text`, `\x09`}
	for _, output := range []string{"hex", "escape"} {
		testenv.MustExec(t, conn, "SET bytea_output = "+output)
		for _, s := range samples(t, conn, "bytea", literals) {
			got, err := ParseBytea([]byte("kept"), s.text)
			if err != nil || !bytes.Equal(got, append([]byte("kept"), s.bin...)) {
				t.Errorf("bytea %s (%s): %q parses to % x (%v), PostgreSQL holds % x", s.literal, output, s.text, got, err, s.bin)
			}
			if back := AppendBytea(nil, s.bin); output == "hex" && !bytes.Equal(back, s.text) {
				t.Errorf("bytea %s: AppendBytea gives %q, PostgreSQL printed %q", s.literal, back, s.text)
			}
		}
	}
	testenv.MustExec(t, conn, sessionSettings)
	for _, s := range []string{`\x0`, `\xzz`, `\x 00`, `bad\9`, `\400`, `a\`, `\01`, `\\\`} {
		if got, err := ParseBytea(nil, []byte(s)); err == nil {
			t.Errorf("ParseBytea(%q) = % x", s, got)
		}
	}
}

// uuid parses to the 16 bytes of its binary send form; AppendUUID prints
// it back.
func TestParseUUIDAgainstBinary(t *testing.T) {
	conn := connect(t)
	literals := []string{"00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
		"{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}", "a0eebc999c0b4ef8bb6d6bb9bd380a11", "01234567-89ab-cdef-0123-456789abcdef"}
	for _, s := range samples(t, conn, "uuid", literals) {
		u, err := ParseUUID(s.text)
		if err != nil || !bytes.Equal(u[:], s.bin) {
			t.Errorf("uuid %s: %q parses to % x (%v), PostgreSQL holds % x", s.literal, s.text, u, err, s.bin)
		}
		if back := AppendUUID(nil, u); !bytes.Equal(back, s.text) {
			t.Errorf("uuid %s: AppendUUID gives %q, PostgreSQL printed %q", s.literal, back, s.text)
		}
	}
	for _, s := range []string{"", "a0eebc999c0b4ef8bb6d6bb9bd380a11", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g",
		"a0eebc99+9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc9-99c0b-4ef8-bb6d-6bb9bd380a11"} {
		if u, err := ParseUUID([]byte(s)); err == nil {
			t.Errorf("ParseUUID(%q) = % x", s, u)
		}
	}
}
