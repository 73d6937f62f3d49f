// Package clientconfig reads and writes the CLI's client configuration:
// for each Sluice server (one or more API URLs), the token to use and the
// CA that signs its certificate. `sluice up` and a bootstrapping
// `sluice node` write an entry, so that a person on the same machine runs
// `sluice task list` with no extra step.
//
// The file is $XDG_CONFIG_HOME/sluice/config.yaml, else
// ~/.config/sluice/config.yaml, mode 0600 in a 0700 directory:
//
//	servers:
//	  - urls: [http://127.0.0.1:7420]
//	    token: sluice_0123456789ab_...
//	    data_dir: /var/lib/sluice
//	  - urls: [https://10.0.0.5:7421, https://10.0.0.6:7421, https://10.0.0.7:7421]
//	    token: sluice_...
//	    ca_file: /etc/sluice/tls/ca.pem
package clientconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"gopkg.in/yaml.v3"

	"github.com/sluicedb/sluice/internal/atomicfile"
)

// File is the client configuration.
type File struct {
	Servers []Entry `yaml:"servers"`
}

// Entry is one server: every API URL it answers at, and how to talk to it.
type Entry struct {
	URLs   []string `yaml:"urls,flow"`
	Token  string   `yaml:"token"`
	CAFile string   `yaml:"ca_file,omitempty"`
	// DataDir names the data directory whose node wrote the entry.
	DataDir string `yaml:"data_dir,omitempty"`
}

// DefaultPath is where the client configuration lives for the user whose
// environment getenv reads.
func DefaultPath(getenv func(string) string) (string, error) {
	if dir := getenv("XDG_CONFIG_HOME"); dir != "" {
		return filepath.Join(dir, "sluice", "config.yaml"), nil
	}
	home := getenv("HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", fmt.Errorf("client config: no $XDG_CONFIG_HOME or home directory: %w", err)
		}
	}
	return filepath.Join(home, ".config", "sluice", "config.yaml"), nil
}

// Load reads the file; a missing file is an empty configuration.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &File{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("client config %s: %w", path, err)
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("client config %s: %w", path, err)
	}
	return &f, nil
}

// Normalize gives a server URL one spelling: a scheme (http when none),
// lower-case scheme and host, no trailing slash.
func Normalize(raw string) string {
	raw = strings.TrimSpace(raw)
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return strings.TrimRight(raw, "/")
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	u.Path = strings.TrimRight(u.Path, "/")
	return u.String()
}

// Lookup finds the entry that lists url.
func (f *File) Lookup(url string) (Entry, bool) {
	want := Normalize(url)
	for _, e := range f.Servers {
		for _, u := range e.URLs {
			if Normalize(u) == want {
				return e, true
			}
		}
	}
	return Entry{}, false
}

// Upsert writes e into the file at path, replacing every entry that shares
// one of its URLs (a server started again on the same address with
// another data directory is another server now). The file is written
// whole, through a temporary file, under an exclusive lock, mode 0600.
func Upsert(path string, e Entry) error {
	if len(e.URLs) == 0 || e.Token == "" {
		return errors.New("client config: an entry needs its URLs and a token")
	}
	for i, u := range e.URLs {
		e.URLs[i] = Normalize(u)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("client config: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".config.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("client config: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("client config: lock: %w", err)
	}
	f, err := Load(path)
	if err != nil {
		return err
	}
	f.Servers = slices.DeleteFunc(f.Servers, func(o Entry) bool {
		return slices.ContainsFunc(o.URLs, func(u string) bool { return slices.Contains(e.URLs, Normalize(u)) })
	})
	f.Servers = append(f.Servers, e)
	out, err := yaml.Marshal(f)
	if err != nil {
		return err
	}
	out = append([]byte("# Written by sluice: the servers this user talks to, with their API tokens. Keep it private.\n"), out...)
	if err := atomicfile.Write(path, out, 0o600); err != nil {
		return fmt.Errorf("client config: %w", err)
	}
	return nil
}
