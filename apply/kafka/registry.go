package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// registry registers schemas with a Confluent-compatible schema registry
// and remembers their ids: one request per subject and schema for the
// life of the encoder. Two first uses at once may both register; the
// registry answers both with the same id.
type registry struct {
	base           string // without credentials
	user, password string
	client         *http.Client

	mu  sync.Mutex
	ids map[string]int32 // subject NUL schema → id
}

// RegistryError is a schema registry's refusal or failure: the request's
// URL (never credentials), the HTTP status and the start of the response
// body. A StatusCode of 5xx (or 429) may pass on retry; a 4xx is the
// schema or the configuration.
type RegistryError struct {
	URL        string
	StatusCode int
	Status     string
	Body       string
}

func (e *RegistryError) Error() string {
	return fmt.Sprintf("schema registry: POST %s: %s: %s", e.URL, e.Status, e.Body)
}

// registryTimeout bounds one registry request when ctx has no deadline.
const registryTimeout = 30 * time.Second

// newRegistry checks the registry URL. Credentials in the URL's user info
// are taken as basic auth when user is empty, and never printed.
func newRegistry(rawURL, user, password string) (*registry, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("schema registry URL %q: want http(s)://host[:port][/path]", redactURL(rawURL))
	}
	if u.User != nil {
		if user == "" {
			user = u.User.Username()
			password, _ = u.User.Password()
		}
		u.User = nil
	}
	return &registry{
		base:     strings.TrimRight(u.String(), "/"),
		user:     user,
		password: password,
		client:   &http.Client{Timeout: registryTimeout},
		ids:      map[string]int32{},
	}, nil
}

// redactURL hides a password in a URL, also in one that does not parse
// as the URL it was meant to be ("http//user:pw@host" is a path).
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		return u.Redacted()
	}
	if at := strings.LastIndexByte(raw, '@'); at >= 0 {
		return "xxxxx" + raw[at:]
	}
	return raw
}

// id returns the schema's id under subject, registering it the first time.
func (r *registry) id(ctx context.Context, subject, schema string) (int32, error) {
	k := subject + "\x00" + schema
	r.mu.Lock()
	id, ok := r.ids[k]
	r.mu.Unlock()
	if ok {
		return id, nil
	}
	id, err := r.register(ctx, subject, schema)
	if err != nil {
		return 0, err
	}
	r.mu.Lock()
	r.ids[k] = id
	r.mu.Unlock()
	return id, nil
}

// register posts the schema as a new version of subject; the registry
// returns the existing id when it has the schema already.
func (r *registry) register(ctx context.Context, subject, schema string) (int32, error) {
	body, err := json.Marshal(struct {
		Schema string `json:"schema"`
	}{schema})
	if err != nil {
		return 0, err
	}
	endpoint := r.base + "/subjects/" + url.PathEscape(subject) + "/versions"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("schema registry: POST %s: %w", endpoint, err)
	}
	req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	req.Header.Set("Accept", "application/vnd.schemaregistry.v1+json, application/json")
	if r.user != "" || r.password != "" {
		req.SetBasicAuth(r.user, r.password)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		// net/http leaves credentials out of its errors; the URL has none.
		return 0, fmt.Errorf("schema registry: %w", err)
	}
	defer resp.Body.Close()
	const maxBody = 64 << 10
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, fmt.Errorf("schema registry: POST %s: reading the response: %w", endpoint, err)
	}
	if resp.StatusCode/100 != 2 {
		return 0, &RegistryError{URL: endpoint, StatusCode: resp.StatusCode, Status: resp.Status, Body: truncate(string(respBody), 512)}
	}
	var out struct {
		ID *int32 `json:"id"`
	}
	if err := json.Unmarshal(respBody, &out); err != nil || out.ID == nil {
		return 0, fmt.Errorf("schema registry: POST %s: %s: no schema id in the response: %s", endpoint, resp.Status, truncate(string(respBody), 512))
	}
	return *out.ID, nil
}

// truncate shortens s to at most n bytes, marking the cut.
func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
