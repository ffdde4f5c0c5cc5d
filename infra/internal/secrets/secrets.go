// Package secrets owns the customer KMS key and the secrets Quibly generates:
// the JWT key and Redis auth token (one app secret) and the MSK SCRAM login.
// Values are generated once, stored only as Pulumi secrets and in Secrets
// Manager, and read by the servers at start; they never appear in user data.
package secrets

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/kms"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/secretsmanager"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// SecretsArgs names the secrets.
type SecretsArgs struct {
	// Name prefixes every secret (quibly-<stack>).
	Name          string
	KafkaUsername string
	// RecoveryWindowDays is how long a deleted secret can be restored (0 deletes at once).
	RecoveryWindowDays int
	Tags               pulumi.StringMap
}

// Secrets exposes the key, the secret ARNs and, as Pulumi secrets, the values the
// data stores must be created with.
type Secrets struct {
	pulumi.ResourceState

	KeyArn         pulumi.StringOutput
	AppSecretArn   pulumi.StringOutput
	KafkaSecretArn pulumi.StringOutput
	RedisAuthToken pulumi.StringOutput // secret
	KafkaPassword  pulumi.StringOutput // secret
}

// generated marks the properties whose values are produced here: the first `up`
// stores them, later runs (which generate new candidates) leave them alone, so a
// secret changes only when an operator rotates it on purpose.
var generated = pulumi.IgnoreChanges([]string{"secretString"})

// NewSecrets creates the key and the two secrets.
func NewSecrets(ctx *pulumi.Context, name string, args *SecretsArgs, opts ...pulumi.ResourceOption) (*Secrets, error) {
	s := &Secrets{}
	if err := ctx.RegisterComponentResource("quibly:secrets:Secrets", name, s, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(s)

	// MSK refuses SCRAM secrets under the AWS-managed key, so all secrets and the
	// encrypted data stores share one customer key.
	key, err := kms.NewKey(ctx, name, &kms.KeyArgs{
		Description:          pulumi.Sprintf("Quibly %s: secrets and data at rest", args.Name),
		EnableKeyRotation:    pulumi.Bool(true),
		DeletionWindowInDays: pulumi.Int(30),
		Tags:                 args.Tags,
	}, parent)
	if err != nil {
		return nil, err
	}
	if _, err := kms.NewAlias(ctx, name, &kms.AliasArgs{
		Name: pulumi.Sprintf("alias/%s", args.Name), TargetKeyId: key.KeyId,
	}, parent); err != nil {
		return nil, err
	}

	jwt, err := randomHex(32)
	if err != nil {
		return nil, err
	}
	redisToken, err := randomHex(32) // hex: ElastiCache tokens forbid some punctuation
	if err != nil {
		return nil, err
	}
	kafkaPassword, err := randomHex(24)
	if err != nil {
		return nil, err
	}

	appSecret, err := secretsmanager.NewSecret(ctx, name+"-app", &secretsmanager.SecretArgs{
		Name:                 pulumi.Sprintf("%s/app", args.Name),
		Description:          pulumi.String("Quibly server secrets: JWT_SECRET, REDIS_PASSWORD"),
		KmsKeyId:             key.Arn,
		RecoveryWindowInDays: pulumi.Int(args.RecoveryWindowDays),
		Tags:                 args.Tags,
	}, parent)
	if err != nil {
		return nil, err
	}
	appJSON, err := json.Marshal(map[string]string{"JWT_SECRET": jwt, "REDIS_PASSWORD": redisToken})
	if err != nil {
		return nil, err
	}
	if _, err := secretsmanager.NewSecretVersion(ctx, name+"-app", &secretsmanager.SecretVersionArgs{
		SecretId:     appSecret.ID(),
		SecretString: pulumi.ToSecret(pulumi.String(string(appJSON))).(pulumi.StringOutput),
	}, parent, generated); err != nil {
		return nil, err
	}

	// MSK only accepts SCRAM secrets whose name starts with AmazonMSK_.
	kafkaSecret, err := secretsmanager.NewSecret(ctx, name+"-kafka", &secretsmanager.SecretArgs{
		Name:                 pulumi.Sprintf("AmazonMSK_%s", args.Name),
		Description:          pulumi.String("Quibly MSK SASL/SCRAM login"),
		KmsKeyId:             key.Arn,
		RecoveryWindowInDays: pulumi.Int(args.RecoveryWindowDays),
		Tags:                 args.Tags,
	}, parent)
	if err != nil {
		return nil, err
	}
	kafkaJSON, err := json.Marshal(map[string]string{"username": args.KafkaUsername, "password": kafkaPassword})
	if err != nil {
		return nil, err
	}
	if _, err := secretsmanager.NewSecretVersion(ctx, name+"-kafka", &secretsmanager.SecretVersionArgs{
		SecretId:     kafkaSecret.ID(),
		SecretString: pulumi.ToSecret(pulumi.String(string(kafkaJSON))).(pulumi.StringOutput),
	}, parent, generated); err != nil {
		return nil, err
	}

	s.KeyArn = key.Arn
	s.AppSecretArn = appSecret.Arn
	s.KafkaSecretArn = kafkaSecret.Arn
	s.RedisAuthToken = pulumi.ToSecret(pulumi.String(redisToken)).(pulumi.StringOutput)
	s.KafkaPassword = pulumi.ToSecret(pulumi.String(kafkaPassword)).(pulumi.StringOutput)
	if err := ctx.RegisterResourceOutputs(s, pulumi.Map{
		"keyArn": s.KeyArn, "appSecretArn": s.AppSecretArn, "kafkaSecretArn": s.KafkaSecretArn,
	}); err != nil {
		return nil, err
	}
	return s, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating a secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}
