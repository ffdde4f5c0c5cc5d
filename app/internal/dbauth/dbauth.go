// Package dbauth gives the database pool the credentials for each new connection, so a
// password rotated while the servers run reaches them without a restart: new connections
// use what the source holds now, and a refusal makes the source read it again.
package dbauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Credentials are a database login.
type Credentials struct {
	User     string
	Password string
}

// Source gives the credentials for the next new connection.
type Source interface {
	Credentials(ctx context.Context) (Credentials, error)
	// Refresh drops what is cached: the database refused it, so it was rotated.
	Refresh()
}

var (
	_ Source = (*Memory)(nil)
	_ Source = (*SecretsManager)(nil)
)

// Memory holds credentials set by the program (tests, and a URL's fixed password).
type Memory struct {
	mu    sync.Mutex
	creds Credentials
}

// NewMemory returns a Memory source holding creds.
func NewMemory(creds Credentials) *Memory { return &Memory{creds: creds} }

// Set replaces the credentials.
func (m *Memory) Set(creds Credentials) {
	m.mu.Lock()
	m.creds = creds
	m.mu.Unlock()
}

// Credentials returns the credentials last set.
func (m *Memory) Credentials(context.Context) (Credentials, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.creds, nil
}

// Refresh does nothing: Memory always holds the current value.
func (m *Memory) Refresh() {}

// cache keeps what fetch returned for ttl, and at most one fetch runs at a time.
type cache struct {
	fetch func(context.Context) (Credentials, error)
	ttl   time.Duration
	now   func() time.Time

	mu      sync.Mutex
	creds   Credentials
	fetched time.Time
	valid   bool
}

func (c *cache) get(ctx context.Context) (Credentials, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.valid && c.now().Sub(c.fetched) < c.ttl {
		return c.creds, nil
	}
	creds, err := c.fetch(ctx)
	if err != nil {
		return Credentials{}, err
	}
	c.creds, c.fetched, c.valid = creds, c.now(), true
	return creds, nil
}

// minRefetch spaces the reads that refusals cause: the many connections a refusal
// fails at once need one read, not one each.
const minRefetch = 250 * time.Millisecond

func (c *cache) drop() {
	c.mu.Lock()
	if c.now().Sub(c.fetched) >= minRefetch {
		c.valid = false
	}
	c.mu.Unlock()
}

// parseSecret reads a secret in the form RDS and the infra write: {"username", "password"}.
func parseSecret(id, s string) (Credentials, error) {
	var v struct {
		Username *string `json:"username"`
		Password *string `json:"password"`
	}
	// The error names the secret but never its text.
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return Credentials{}, fmt.Errorf("dbauth: secret %s is not a JSON object with username and password", id)
	}
	if v.Username == nil || *v.Username == "" || v.Password == nil || *v.Password == "" {
		return Credentials{}, fmt.Errorf("dbauth: secret %s lacks a username or a password", id)
	}
	return Credentials{User: *v.Username, Password: *v.Password}, nil
}

var errNoSecretID = errors.New("dbauth: no secret id")
