package coordinator

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// Raft log entries are decoded by every replica, from its own log, from a
// snapshot's peers and from the leader's AppendEntries: Decode must not
// panic on any input, and a command it returns must re-encode and decode
// to the same command (replicas that re-propose or forward it must agree).
func FuzzDecodeCommand(f *testing.F) {
	for _, entry := range commandFuzzSeeds(f) {
		f.Add(entry)
	}
	f.Fuzz(func(t *testing.T, entry []byte) {
		cmd, err := Decode(entry)
		if err != nil {
			if cmd != nil {
				t.Fatalf("error %v with a command", err)
			}
			return
		}
		if cmd.Type() != CommandType(entry[0]) {
			t.Fatalf("entry of type %d decoded as %T (type %d)", entry[0], cmd, cmd.Type())
		}
		_ = commandName(cmd.Type())
		again, err := Encode(cmd)
		if err != nil {
			t.Fatalf("decoded %#v does not encode: %v", cmd, err)
		}
		cmd2, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded %q does not decode: %v", again, err)
		}
		// The first trip may turn an empty map or list of an omitempty
		// field (`"rename":{}`) into nil, which means the same to every
		// handler. From then on the command and its encoding are fixed.
		again2, err := Encode(cmd2)
		if err != nil {
			t.Fatalf("%#v does not encode: %v", cmd2, err)
		}
		if !bytes.Equal(again, again2) {
			t.Fatalf("round trip changed the command:\n%#v\n%#v\nencoded %q, then %q", cmd, cmd2, again, again2)
		}
		cmd3, err := Decode(again2)
		if err != nil {
			t.Fatalf("re-encoded %q does not decode: %v", again2, err)
		}
		if !reflect.DeepEqual(cmd2, cmd3) {
			t.Fatalf("round trip changed the command:\n%#v\n%#v\nvia %q", cmd2, cmd3, again2)
		}
	})
}

// commandFuzzSeeds encodes one filled-in instance of every registered
// command type (goldenLog's; a zero one for a type added later without a
// sample there), plus the previous format's golden entries and broken
// entries.
func commandFuzzSeeds(tb testing.TB) [][]byte {
	samples := goldenLog()
	byType := map[CommandType]Command{}
	for _, c := range samples {
		byType[c.Type()] = c
	}
	var seeds [][]byte
	for typ := 0; typ < len(handlers); typ++ {
		h := handlers[typ]
		if h == nil {
			continue
		}
		cmd, ok := byType[CommandType(typ)]
		if !ok {
			cmd = reflect.New(h.goType).Interface().(Command)
		}
		for _, c := range []Command{cmd, reflect.New(h.goType).Interface().(Command)} {
			entry, err := Encode(c)
			if err != nil {
				tb.Fatalf("encode %T: %v", c, err)
			}
			seeds = append(seeds, entry)
		}
	}
	// Entries of the previous format, as older nodes wrote them.
	v1, err := filepath.Glob(filepath.Join("testdata", "commands", "v1", "*.golden"))
	if err != nil {
		tb.Fatal(err)
	}
	for _, path := range v1 {
		golden, err := os.ReadFile(path)
		if err == nil {
			var entry []byte
			if entry, err = parseEntry(golden); err == nil {
				seeds = append(seeds, entry)
			}
		}
		if err != nil {
			tb.Fatalf("%s: %v", path, err)
		}
	}
	create := seeds[0]
	seeds = append(seeds,
		nil,
		[]byte{0},
		[]byte{255, '{', '}'},
		[]byte{byte(CmdCreateTask)},
		[]byte{byte(CmdCreateTask), 'n', 'u', 'l', 'l'},
		create[:len(create)/2], // truncated JSON
		append([]byte{byte(CmdSetTaskStatus)}, `{"name":"t1","epoch":-1,"error":{"at":"2026-13-01T00:00:00Z"}}`...),
		append([]byte{byte(CmdUpdateSettings)}, `{"name":"t1","retry":{"connection":"forever","other":5},"alerts":{"latency":{"above":"-1s"}}}`...),
		append([]byte{byte(CmdSetNodesLive)}, `{"live":{"n1":true,"n1":false},"at":"2026-01-01T00:00:00+23:59"}`...),
	)
	return seeds
}
