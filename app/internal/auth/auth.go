// Package auth hashes passwords and issues and verifies the JWTs that both the HTTP
// API and the Socket.IO handshake accept.
package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/quibly/quibly/app/internal/apperr"
	"github.com/quibly/quibly/app/internal/model"
)

// MinSecretLen is the shortest accepted signing secret: HS256 is only as strong as
// its key, and 32 bytes matches the hash output size.
const MinSecretLen = 32

// DefaultTokenTTL applies when Config.TokenTTL is zero.
const DefaultTokenTTL = 24 * time.Hour

// Config configures Auth.
type Config struct {
	// Secret signs tokens (JWT_SECRET). Every node of a cluster must share it.
	Secret []byte
	// TokenTTL is how long an issued token stays valid; zero means DefaultTokenTTL.
	TokenTTL time.Duration
}

// Auth issues and verifies tokens. It is safe for concurrent use.
type Auth struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time // replaced in tests
}

// NewAuth validates cfg and returns an Auth.
func NewAuth(cfg Config) (*Auth, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Copy so a caller reusing its buffer cannot change the key under us.
	return &Auth{secret: append([]byte(nil), cfg.Secret...), ttl: cfg.TokenTTL, now: time.Now}, nil
}

// withDefaults fills the fields left zero that have a default.
func (c Config) withDefaults() Config {
	if c.TokenTTL == 0 {
		c.TokenTTL = DefaultTokenTTL
	}
	return c
}

// Validate rejects a short secret and a negative lifetime.
func (c Config) Validate() error {
	if len(c.Secret) < MinSecretLen {
		// The length is safe to report; the secret itself never is.
		return fmt.Errorf("auth: JWT secret must be at least %d bytes, got %d", MinSecretLen, len(c.Secret))
	}
	if c.TokenTTL < 0 {
		return fmt.Errorf("auth: token TTL must not be negative, got %s", c.TokenTTL)
	}
	return nil
}

// MaxPasswordBytes is the longest password: bcrypt takes at most 72 bytes. Longer
// ones are refused rather than pre-hashed: an unsalted pre-hash let the pre-hash
// itself log in as well as the password.
const MaxPasswordBytes = 72

// HashPassword returns the bcrypt hash (default cost) of pw.
func HashPassword(pw string) (string, error) {
	if len(pw) > MaxPasswordBytes {
		return "", fmt.Errorf("auth: hash password: longer than %d bytes", MaxPasswordBytes)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("auth: hash password: %w", err)
	}
	return string(h), nil
}

// CheckPassword reports whether pw matches hash. A malformed hash never matches. A
// password over MaxPasswordBytes never matches either, at the same cost as one that
// is checked, so the answer's timing says nothing about the account.
func CheckPassword(hash, pw string) bool {
	if len(pw) > MaxPasswordBytes {
		_ = bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw[:MaxPasswordBytes]))
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
}

// maxClockSkew is what a token's lifetime may exceed the configured TTL by.
const maxClockSkew = time.Minute

// claims is the token body: sub = user id, name = username, ver = the user's token
// version at issue (absent in tokens from before versions: 0), iat, exp.
type claims struct {
	Name    string `json:"name"`
	Version int64  `json:"ver,omitempty"`
	jwt.RegisteredClaims
}

// IssueToken returns a signed HS256 token for u, valid for the configured TTL.
func (a *Auth) IssueToken(u model.User) (string, error) {
	if u.ID == "" || u.Username == "" {
		return "", errors.New("auth: issue token: user id and username are required")
	}
	now := a.now()
	c := claims{
		Name:    u.Username,
		Version: u.TokenVersion,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   u.ID,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(a.ttl)),
		},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(a.secret)
	if err != nil {
		return "", fmt.Errorf("auth: sign token: %w", err)
	}
	return s, nil
}

// ParseToken verifies token and returns the user it names (ID, Username and the
// TokenVersion it was issued under; the caller compares that with the store's).
// Every failure is an *apperr.Error with code unauthorized; the cause is not
// detailed beyond "expired" so clients learn when to log in again, nothing more.
func (a *Auth) ParseToken(token string) (model.User, error) {
	u, _, err := a.ParseTokenExpiry(token)
	return u, err
}

// ParseTokenExpiry is ParseToken that also returns when the token expires.
func (a *Auth) ParseTokenExpiry(token string) (model.User, time.Time, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c,
		func(*jwt.Token) (any, error) { return a.secret, nil },
		// Pinning the algorithm is what stops "alg":"none" and key-confusion tokens.
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(a.now),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return model.User{}, time.Time{}, apperr.New(apperr.Unauthorized, "token expired, log in again")
	case err != nil:
		return model.User{}, time.Time{}, apperr.New(apperr.Unauthorized, "invalid token")
	case c.Subject == "" || c.Name == "":
		return model.User{}, time.Time{}, apperr.New(apperr.Unauthorized, "invalid token")
	// A token must not outlive what this server issues: one signed with the key but a
	// far exp (a leaked key's forgery, an old build's mistake) is refused.
	case c.IssuedAt == nil || c.ExpiresAt.Sub(c.IssuedAt.Time) > a.ttl+maxClockSkew:
		return model.User{}, time.Time{}, apperr.New(apperr.Unauthorized, "invalid token")
	}
	return model.User{ID: c.Subject, Username: c.Name, TokenVersion: c.Version}, c.ExpiresAt.Time, nil
}

// TokenVersions is what Current needs of the store.
type TokenVersions interface {
	TokenVersion(ctx context.Context, userID string) (version int64, exists bool, err error)
}

// Current refuses (unauthorized) a verified token whose user no longer exists (a
// restore, a reset of standalone's data: its messages would be refused by the store)
// or whose tokens were revoked after it was issued (logout). Other errors are the
// store's.
func Current(ctx context.Context, st TokenVersions, u model.User) error {
	version, exists, err := st.TokenVersion(ctx, u.ID)
	switch {
	case err != nil:
		return err
	case !exists:
		return apperr.New(apperr.Unauthorized, "the token's user no longer exists, log in again")
	case version != u.TokenVersion:
		return apperr.New(apperr.Unauthorized, "the token was revoked (logged out), log in again")
	}
	return nil
}
