// Package secrets owns the customer KMS key and the secrets Quibly generates:
// the JWT key and Redis auth token (one app secret) and the MSK SCRAM login.
// Values come from the stack's secret config or are generated once; they are
// stored only as Pulumi secrets and in Secrets Manager, and read by the servers
// at start; they never appear in user data.
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
	// Operator-set values (from `pulumi config set --secret`); empty ones are generated.
	JWTSecret, RedisAuthToken, KafkaPassword string
	Tags                                     pulumi.StringMap
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
	// RedisTokenGenerated says the token must be pinned where it is used too.
	RedisTokenGenerated bool
}

// pinned keeps a generated value: the first `up` stores it, later runs (which
// generate new candidates) leave it alone. Operator-set values are not pinned, so
// changing them in the stack config rotates them.
func pinned(generated bool) pulumi.ResourceOption {
	if generated {
		return pulumi.IgnoreChanges([]string{"secretString"})
	}
	return pulumi.IgnoreChanges(nil)
}

// valueOr returns the operator's value, or a generated one and true.
func valueOr(set string, bytes int) (string, bool, error) {
	if set != "" {
		return set, false, nil
	}
	v, err := randomHex(bytes)
	return v, true, err
}

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

	jwt, jwtGen, err := valueOr(args.JWTSecret, 32)
	if err != nil {
		return nil, err
	}
	redisToken, redisGen, err := valueOr(args.RedisAuthToken, 32) // hex: ElastiCache tokens forbid some punctuation
	if err != nil {
		return nil, err
	}
	kafkaPassword, kafkaGen, err := valueOr(args.KafkaPassword, 24)
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
	}, parent, pinned(jwtGen || redisGen)); err != nil {
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
	}, parent, pinned(kafkaGen)); err != nil {
		return nil, err
	}

	s.KeyArn = key.Arn
	s.AppSecretArn = appSecret.Arn
	s.KafkaSecretArn = kafkaSecret.Arn
	s.RedisAuthToken = pulumi.ToSecret(pulumi.String(redisToken)).(pulumi.StringOutput)
	s.KafkaPassword = pulumi.ToSecret(pulumi.String(kafkaPassword)).(pulumi.StringOutput)
	s.RedisTokenGenerated = redisGen
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
