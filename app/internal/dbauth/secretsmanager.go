package dbauth

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// SecretsManagerConfig names the secret that holds the login.
type SecretsManagerConfig struct {
	// SecretID is the secret's ARN or name (DATABASE_SECRET_ARN).
	SecretID string
	// TTL is how long a read value is used before the secret is read again; a refusal
	// by the database reads it again at once. 0 means DefaultTTL.
	TTL time.Duration
}

// DefaultTTL keeps the secret reads to one a minute per server, while a rotation is
// picked up within a minute even by a server whose connections never fail.
const DefaultTTL = time.Minute

// SecretsManager reads the login from an AWS Secrets Manager secret. The AWS settings
// (region, credentials, endpoint) come from the environment and the instance profile,
// as for any AWS SDK program.
type SecretsManager struct {
	cache
	client *secretsmanager.Client
	id     string
}

// NewSecretsManager loads the AWS settings; the secret is first read by the first connection.
func NewSecretsManager(ctx context.Context, cfg SecretsManagerConfig) (*SecretsManager, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("dbauth: AWS settings for secret %s: %w", cfg.SecretID, err)
	}
	if awsCfg.Region == "" {
		return nil, fmt.Errorf("dbauth: no AWS region for secret %s: set AWS_REGION", cfg.SecretID)
	}
	s := &SecretsManager{client: secretsmanager.NewFromConfig(awsCfg), id: cfg.SecretID}
	s.cache = cache{fetch: s.read, ttl: cfg.TTL, now: time.Now}
	return s, nil
}

// withDefaults fills the fields left zero that have a default.
func (c SecretsManagerConfig) withDefaults() SecretsManagerConfig {
	if c.TTL <= 0 {
		c.TTL = DefaultTTL
	}
	return c
}

// Validate requires the secret's id.
func (c SecretsManagerConfig) Validate() error {
	if c.SecretID == "" {
		return errNoSecretID
	}
	return nil
}

func (s *SecretsManager) read(ctx context.Context) (Credentials, error) {
	out, err := s.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s.id)})
	if err != nil {
		return Credentials{}, fmt.Errorf("dbauth: reading secret %s: %w", s.id, err)
	}
	return parseSecret(s.id, aws.ToString(out.SecretString))
}

// Credentials returns the secret's login, read at most once per TTL.
func (s *SecretsManager) Credentials(ctx context.Context) (Credentials, error) { return s.get(ctx) }

// Refresh makes the next Credentials read the secret again.
func (s *SecretsManager) Refresh() { s.drop() }
