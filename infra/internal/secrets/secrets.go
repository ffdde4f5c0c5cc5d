// Package secrets owns the customer KMS key and the secrets Quibly generates:
// the JWT key and Redis auth token (one app secret), the MSK SCRAM login and the
// app's own database login (the servers never use the database's master user).
// Values come from the stack's secret config or are generated once and kept in a
// pulumi:index:Stash, so every later run of the program (and the ElastiCache
// group, and the stack's state) sees the value the first `up` stored. They live
// only as Pulumi secrets and in Secrets Manager, are read by the servers at
// start, and never appear in user data.
package secrets

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/kms"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/secretsmanager"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// SecretsArgs names the secrets.
type SecretsArgs struct {
	// Name prefixes every secret (quibly-<stack>).
	Name          string
	KafkaUsername string
	// DBAppUsername is the database role the servers log in as (not the master user).
	DBAppUsername string
	// RecoveryWindowDays is how long a deleted secret can be restored (0 deletes at once).
	RecoveryWindowDays int
	// Operator-set values (from `pulumi config set --secret`); empty ones are generated.
	JWTSecret, RedisAuthToken, KafkaPassword, DBAppPassword string
	// Protect keeps the key through replacements and past a destroy: snapshots and
	// backups encrypted with it stay readable.
	Protect bool
	Tags    pulumi.StringMap
}

// Secrets exposes the key, the secret ARNs and, as Pulumi secrets, the values the
// data stores must be created with.
type Secrets struct {
	pulumi.ResourceState

	KeyArn         pulumi.StringOutput
	AppSecretArn   pulumi.StringOutput
	KafkaSecretArn pulumi.StringOutput
	// DBAppSecretArn holds the servers' database login; `quibly -setup-db` gives the
	// role this password before each start, and the servers read it for each new
	// connection, so a new value plus one run of quibly-db-setup rotates it.
	DBAppSecretArn pulumi.StringOutput
	RedisAuthToken pulumi.StringOutput // secret
	KafkaPassword  pulumi.StringOutput // secret
}

// value is the operator's value when set (changing it in the stack config rotates
// it), else a generated one kept in a stash: each run offers a fresh candidate, and
// the engine answers with the one the first `up` stored.
func value(ctx *pulumi.Context, name, set string, bytes int, parent pulumi.ResourceOption) (pulumi.StringOutput, error) {
	if set != "" {
		return pulumi.ToSecret(pulumi.String(set)).(pulumi.StringOutput), nil
	}
	candidate, err := randomHex(bytes)
	if err != nil {
		return pulumi.StringOutput{}, err
	}
	stash, err := pulumi.NewStash(ctx, name, &pulumi.StashArgs{Input: pulumi.ToSecret(pulumi.String(candidate))},
		parent, pulumi.AdditionalSecretOutputs([]string{"input", "output"}))
	if err != nil {
		return pulumi.StringOutput{}, err
	}
	return pulumi.ToSecret(stash.Output.ApplyT(func(v any) (string, error) {
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("stash %s holds %T, not a string", name, v)
		}
		return s, nil
	})).(pulumi.StringOutput), nil
}

// KeyStatement is one statement of a KMS key policy.
type KeyStatement struct {
	Sid       string
	Effect    string
	Principal map[string]string
	Action    []string
	Resource  string
	Condition map[string]map[string]string `json:",omitempty"`
}

// KeyPolicy is a key policy, written out rather than left to AWS's default: the
// account administers the key (without that statement nobody could ever change or
// delete it, and no IAM policy could grant its use), then the statements given,
// which may name the account.
func KeyPolicy(ctx *pulumi.Context, parent pulumi.InvokeOption, more func(account string) []KeyStatement) (string, error) {
	id, err := aws.GetCallerIdentity(ctx, nil, parent)
	if err != nil {
		return "", fmt.Errorf("reading the account id: %w", err)
	}
	part, err := aws.GetPartition(ctx, nil, parent)
	if err != nil {
		return "", fmt.Errorf("reading the partition: %w", err)
	}
	statements := []KeyStatement{{Sid: "AccountAdministersTheKey", Effect: "Allow",
		Principal: map[string]string{"AWS": fmt.Sprintf("arn:%s:iam::%s:root", part.Partition, id.AccountId)},
		Action:    []string{"kms:*"}, Resource: "*"}}
	if more != nil {
		statements = append(statements, more(id.AccountId)...)
	}
	b, err := json.Marshal(struct {
		Version   string
		Statement []KeyStatement
	}{"2012-10-17", statements})
	return string(b), err
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
	// IAM policies decide who uses this key: the servers' role (kms:Decrypt on this
	// key only), and the deployer, whose calls let Secrets Manager, RDS, MSK,
	// ElastiCache and S3 encrypt with it.
	policy, err := KeyPolicy(ctx, parent, nil)
	if err != nil {
		return nil, err
	}
	key, err := kms.NewKey(ctx, name, &kms.KeyArgs{
		Description:          pulumi.Sprintf("Quibly %s: secrets and data at rest", args.Name),
		Policy:               pulumi.String(policy),
		EnableKeyRotation:    pulumi.Bool(true),
		DeletionWindowInDays: pulumi.Int(30),
		Tags:                 args.Tags,
	}, parent, pulumi.Protect(args.Protect), pulumi.RetainOnDelete(args.Protect))
	if err != nil {
		return nil, err
	}
	if _, err := kms.NewAlias(ctx, name, &kms.AliasArgs{
		Name: pulumi.Sprintf("alias/%s", args.Name), TargetKeyId: key.KeyId,
	}, parent, pulumi.DeleteBeforeReplace(true)); err != nil {
		return nil, err
	}

	jwt, err := value(ctx, name+"-jwt", args.JWTSecret, 32, parent)
	if err != nil {
		return nil, err
	}
	redisToken, err := value(ctx, name+"-redis-token", args.RedisAuthToken, 32, parent) // hex: ElastiCache tokens forbid some punctuation
	if err != nil {
		return nil, err
	}
	kafkaPassword, err := value(ctx, name+"-kafka-password", args.KafkaPassword, 24, parent)
	if err != nil {
		return nil, err
	}

	secret := func(suffix string, namePrefix pulumi.StringInput, description string, fields map[string]pulumi.StringOutput) (pulumi.StringOutput, error) {
		sec, err := secretsmanager.NewSecret(ctx, name+"-"+suffix, &secretsmanager.SecretArgs{
			NamePrefix:           namePrefix,
			Description:          pulumi.String(description),
			KmsKeyId:             key.Arn,
			RecoveryWindowInDays: pulumi.Int(args.RecoveryWindowDays),
			Tags:                 args.Tags,
		}, parent)
		if err != nil {
			return pulumi.StringOutput{}, err
		}
		if _, err := secretsmanager.NewSecretVersion(ctx, name+"-"+suffix, &secretsmanager.SecretVersionArgs{
			SecretId: sec.ID(), SecretString: jsonOf(fields),
		}, parent); err != nil {
			return pulumi.StringOutput{}, err
		}
		return sec.Arn, nil
	}
	login := func(user string, password pulumi.StringOutput) map[string]pulumi.StringOutput {
		return map[string]pulumi.StringOutput{"username": pulumi.String(user).ToStringOutput(), "password": password}
	}

	appSecret, err := secret("app", pulumi.Sprintf("%s/app-", args.Name), "Quibly server secrets: JWT_SECRET, REDIS_PASSWORD",
		map[string]pulumi.StringOutput{"JWT_SECRET": jwt, "REDIS_PASSWORD": redisToken})
	if err != nil {
		return nil, err
	}
	// MSK only accepts SCRAM secrets whose name starts with AmazonMSK_. A prefix, not a
	// fixed name: a deleted secret keeps its name for the recovery window, so a
	// replacement under the same name would fail.
	kafkaSecret, err := secret("kafka", pulumi.Sprintf("AmazonMSK_%s-", args.Name), "Quibly MSK SASL/SCRAM login",
		login(args.KafkaUsername, kafkaPassword))
	if err != nil {
		return nil, err
	}
	dbAppPassword, err := value(ctx, name+"-db-app-password", args.DBAppPassword, 24, parent) // hex: PostgreSQL's SCRAM takes it unchanged
	if err != nil {
		return nil, err
	}
	dbAppSecret, err := secret("db-app", pulumi.Sprintf("%s/db-app-", args.Name), "Quibly servers' database login (not the master user)",
		login(args.DBAppUsername, dbAppPassword))
	if err != nil {
		return nil, err
	}

	s.KeyArn = key.Arn
	s.AppSecretArn = appSecret
	s.KafkaSecretArn = kafkaSecret
	s.DBAppSecretArn = dbAppSecret
	s.RedisAuthToken = redisToken
	s.KafkaPassword = kafkaPassword
	if err := ctx.RegisterResourceOutputs(s, pulumi.Map{
		"keyArn": s.KeyArn, "appSecretArn": s.AppSecretArn, "kafkaSecretArn": s.KafkaSecretArn, "dbAppSecretArn": s.DBAppSecretArn,
	}); err != nil {
		return nil, err
	}
	return s, nil
}

// jsonOf renders a secret's JSON document from its (secret) fields.
func jsonOf(fields map[string]pulumi.StringOutput) pulumi.StringOutput {
	m := pulumi.StringMap{}
	for k, v := range fields {
		m[k] = v
	}
	return pulumi.ToSecret(m.ToStringMapOutput().ApplyT(func(v map[string]string) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	})).(pulumi.StringOutput)
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating a secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}
