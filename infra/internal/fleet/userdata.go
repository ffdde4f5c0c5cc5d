package fleet

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"text/template"
)

// BootSettings is everything the boot script is given. None of it is secret: the
// script fetches secrets from Secrets Manager each time the service starts, into
// the server's environment only (never to disk).
type BootSettings struct {
	ServerID       string
	Port           int
	Region         string
	ArtifactBucket string
	Arch           string
	// VersionParameter is this node's own version parameter (NodeVersionParameter).
	VersionParameter   string
	MemoryMax          string
	StopTimeoutSeconds int
	FrontendURL        string
	RedisHost          string
	RedisPort          int
	RedisCluster       bool
	KafkaBrokers       string
	KafkaTopic         string
	KafkaReplication   int
	KafkaMinInsync     int
	KafkaGroupID       string
	// PingIntervalSeconds and DrainSeconds are the app's Engine.IO ping interval and
	// longest SIGTERM drain, which the load balancer's timeouts are sized for.
	PingIntervalSeconds int
	// LBIdleTimeoutSeconds is the load balancer's idle timeout.
	LBIdleTimeoutSeconds int
	// VPCCIDR holds the load balancer's addresses, whose X-Forwarded-For is believed.
	VPCCIDR string
	// MetricsNamespace is the CloudWatch namespace the servers publish to (and only there).
	MetricsNamespace string
	DrainSeconds     int
	DBHost           string
	DBPort           int
	DBName           string
	AppSecretArn     string
	KafkaSecretArn   string
	// DBSecretArn is the master user's login, read only by quibly-db-setup.
	DBSecretArn string
	// DBAppSecretArn is the servers' own login, read by the server for each new connection.
	DBAppSecretArn string
}

// safe is what may go between single quotes in the script unescaped.
var safe = regexp.MustCompile(`^[A-Za-z0-9._:/,@=+!-]*$`) // RDS secret ARNs contain "!"

// Validate refuses values that would need shell quoting, so nothing can break out of the script.
func (b BootSettings) Validate() error {
	for name, v := range map[string]string{
		"ServerID": b.ServerID, "Region": b.Region, "ArtifactBucket": b.ArtifactBucket, "Arch": b.Arch,
		"VersionParameter": b.VersionParameter, "MemoryMax": b.MemoryMax, "FrontendURL": b.FrontendURL,
		"RedisHost": b.RedisHost, "KafkaBrokers": b.KafkaBrokers, "KafkaTopic": b.KafkaTopic, "KafkaGroupID": b.KafkaGroupID, "VPCCIDR": b.VPCCIDR, "MetricsNamespace": b.MetricsNamespace, "DBHost": b.DBHost, "DBName": b.DBName,
		"AppSecretArn": b.AppSecretArn, "KafkaSecretArn": b.KafkaSecretArn, "DBSecretArn": b.DBSecretArn, "DBAppSecretArn": b.DBAppSecretArn,
	} {
		if !safe.MatchString(v) {
			return fmt.Errorf("boot setting %s=%q has characters that are unsafe in a shell script", name, v)
		}
	}
	return nil
}

// EnvVar is one line of the server's environment file.
type EnvVar struct{ Name, Value string }

// ServerEnv is the server's environment file (/etc/quibly/quibly.env): every app
// setting the stack declares, under the name the app reads (README, Configuration).
// None is secret; quibly-run adds the secrets.
func (b BootSettings) ServerEnv() []EnvVar {
	return []EnvVar{
		{"SERVER_ID", b.ServerID},
		{"PORT", strconv.Itoa(b.Port)},
		{"FRONTEND_URL", b.FrontendURL},
		{"REDIS_STRING", b.RedisHost},
		{"REDIS_PORT_NO", strconv.Itoa(b.RedisPort)},
		{"REDIS_TLS", "true"},
		{"REDIS_CLUSTER", strconv.FormatBool(b.RedisCluster)},
		{"KAFKA_BROKERS", b.KafkaBrokers},
		{"KAFKA_TLS", "true"},
		{"KAFKA_TOPIC", b.KafkaTopic},
		{"KAFKA_REPLICATION_FACTOR", strconv.Itoa(b.KafkaReplication)},
		{"KAFKA_MIN_INSYNC_REPLICAS", strconv.Itoa(b.KafkaMinInsync)},
		{"KAFKA_GROUP_ID", b.KafkaGroupID},
		{"PING_INTERVAL", fmt.Sprintf("%ds", b.PingIntervalSeconds)},
		{"SHUTDOWN_TIMEOUT", fmt.Sprintf("%ds", b.DrainSeconds)},
		// Above the ALB's idle timeout, as AWS asks of targets: the ALB then never
		// sends a request on a connection the server is closing.
		{"HTTP_IDLE_TIMEOUT", fmt.Sprintf("%ds", b.LBIdleTimeoutSeconds+60)},
		// The ALB's nodes connect from the VPC; the client is the address they append.
		{"TRUSTED_PROXIES", b.VPCCIDR},
		{"CLOUDWATCH_NAMESPACE", b.MetricsNamespace},
	}
}

// RDSCABundle is where RDS's certificate authorities come from: the server verifies
// the database's certificate and host name against them (sslmode=verify-full).
const RDSCABundle = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"

// UserData renders the boot script for one server.
func UserData(b BootSettings) (string, error) {
	if err := b.Validate(); err != nil {
		return "", err
	}
	var out bytes.Buffer
	if err := bootScript.Execute(&out, struct {
		BootSettings
		RDSCABundle string
		Env         []EnvVar
	}{b, RDSCABundle, b.ServerEnv()}); err != nil {
		return "", err
	}
	return out.String(), nil
}

// The script installs these and starts the service:
//   - /etc/quibly/quibly.env: the non-secret environment (endpoints, SERVER_ID);
//   - quibly-fetch: puts the release named by the node's SSM parameter on disk (as
//     root, before each start), so a restart after the deploy moved it runs the new
//     release;
//   - quibly-db-setup: `quibly -setup-db` as the database's master user (before each
//     start): the servers' own role exists and has the password of its secret;
//   - quibly-run: reads the secrets into the environment and execs the server, which
//     logs in as its own role with the password its secret holds at each new
//     connection (DATABASE_SECRET_ARN), so a rotation needs no restart.
//
// The scripts take QUIBLY_ETC and QUIBLY_HOME (default /etc/quibly, /opt/quibly), so
// the tests run them, unchanged, against a local AWS API and PostgreSQL.
var bootScript = template.Must(template.New("boot").Parse(`#!/bin/bash
# Quibly {{.ServerID}} bootstrap (generated by infra/internal/fleet). Holds no secrets.
set -euo pipefail
umask 022
id quibly >/dev/null 2>&1 || useradd --system --home-dir /var/lib/quibly --create-home --shell /sbin/nologin quibly
install -d -m 0755 /etc/quibly /opt/quibly/releases

cat > /etc/quibly/boot.env <<'QUIBLY_BOOT_ENV'
AWS_REGION='{{.Region}}'
ARTIFACT_BUCKET='{{.ArtifactBucket}}'
ARTIFACT_ARCH='{{.Arch}}'
VERSION_PARAMETER='{{.VersionParameter}}'
APP_SECRET_ARN='{{.AppSecretArn}}'
KAFKA_SECRET_ARN='{{.KafkaSecretArn}}'
DB_SECRET_ARN='{{.DBSecretArn}}'
DB_APP_SECRET_ARN='{{.DBAppSecretArn}}'
# No login here: the user and password come from DB_APP_SECRET_ARN.
DATABASE_URL="postgresql://{{.DBHost}}:{{.DBPort}}/{{.DBName}}?sslmode=verify-full&sslrootcert=$etc/rds-ca.pem"
QUIBLY_BOOT_ENV

cat > /etc/quibly/quibly.env <<'QUIBLY_ENV'
{{range .Env}}{{.Name}}={{.Value}}
{{end}}QUIBLY_ENV

# The database's certificate is verified against RDS's authorities (sslmode=verify-full).
curl -fsS --retry 5 --retry-connrefused -o /etc/quibly/rds-ca.pem.part '{{.RDSCABundle}}'
mv /etc/quibly/rds-ca.pem.part /etc/quibly/rds-ca.pem

cat > /usr/local/bin/quibly-fetch <<'QUIBLY_FETCH'
#!/bin/bash
# Puts the release named by this node's SSM version parameter in place as $QUIBLY_HOME/current.
set -euo pipefail
etc=${QUIBLY_ETC:-/etc/quibly} home=${QUIBLY_HOME:-/opt/quibly}
. "$etc/boot.env"
export AWS_REGION
version=$(aws ssm get-parameter --name "$VERSION_PARAMETER" --query Parameter.Value --output text)
case $version in ''|*[!A-Za-z0-9._-]*|.*) echo "quibly-fetch: $VERSION_PARAMETER holds no release name: '$version'" >&2; exit 1 ;; esac
dir=$home/releases/$version
if [ ! -x "$dir/quibly" ]; then
  install -d -m 0755 "$dir"
  aws s3 cp --only-show-errors "s3://$ARTIFACT_BUCKET/quibly/$version/quibly-linux-$ARTIFACT_ARCH" "$dir/quibly.part"
  chmod 0755 "$dir/quibly.part"
  mv "$dir/quibly.part" "$dir/quibly"
fi
ln -sfn "$dir" "$home/current"
echo "quibly-fetch: $VERSION_PARAMETER names $version"
QUIBLY_FETCH

cat > /usr/local/bin/quibly-db-setup <<'QUIBLY_DB_SETUP'
#!/bin/bash
# As the database's master user: the servers' role exists and has its secret's password.
set -euo pipefail
etc=${QUIBLY_ETC:-/etc/quibly} home=${QUIBLY_HOME:-/opt/quibly}
. "$etc/boot.env"
export AWS_REGION DATABASE_URL DATABASE_SECRET_ARN=$DB_APP_SECRET_ARN DATABASE_ADMIN_SECRET_ARN=$DB_SECRET_ARN
exec "$home/current/quibly" -setup-db -env-file ''
QUIBLY_DB_SETUP

cat > /usr/local/bin/quibly-run <<'QUIBLY_RUN'
#!/bin/bash
# Reads the secrets into this process's environment, then becomes the server.
set -euo pipefail
etc=${QUIBLY_ETC:-/etc/quibly} home=${QUIBLY_HOME:-/opt/quibly}
. "$etc/boot.env"
export AWS_REGION DATABASE_URL DATABASE_SECRET_ARN=$DB_APP_SECRET_ARN
secret() { aws secretsmanager get-secret-value --secret-id "$1" --query SecretString --output text; }
APP=$(secret "$APP_SECRET_ARN") KAFKA=$(secret "$KAFKA_SECRET_ARN")
export APP KAFKA
exports=$(python3 -c '
import json, os, shlex
app, kafka = (json.loads(os.environ[k]) for k in ("APP", "KAFKA"))
env = {"JWT_SECRET": app["JWT_SECRET"], "REDIS_PASSWORD": app["REDIS_PASSWORD"],
       "KAFKA_USERNAME": kafka["username"], "KAFKA_PASSWORD": kafka["password"]}
print("\n".join("export %s=%s" % (k, shlex.quote(v)) for k, v in env.items()))
')
unset APP KAFKA
eval "$exports"
exec "$home/current/quibly"
QUIBLY_RUN
chmod 0755 /usr/local/bin/quibly-fetch /usr/local/bin/quibly-db-setup /usr/local/bin/quibly-run

cat > /etc/systemd/system/quibly.service <<'QUIBLY_UNIT'
[Unit]
Description=Quibly chat server
Wants=network-online.target
After=network-online.target

[Service]
User=quibly
Group=quibly
WorkingDirectory=/var/lib/quibly
EnvironmentFile=/etc/quibly/quibly.env
ExecStartPre=+/usr/local/bin/quibly-fetch
ExecStartPre=/usr/local/bin/quibly-db-setup
ExecStart=/usr/local/bin/quibly-run
Restart=on-failure
RestartSec=5
MemoryMax={{.MemoryMax}}
KillSignal=SIGTERM
TimeoutStopSec={{.StopTimeoutSeconds}}
LimitNOFILE=1048576
NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=true
PrivateTmp=true
ReadWritePaths=/var/lib/quibly

[Install]
WantedBy=multi-user.target
QUIBLY_UNIT

systemctl daemon-reload
systemctl enable --now quibly.service
`))
