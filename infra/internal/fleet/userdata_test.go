package fleet

import (
	"strings"
	"testing"
)

func TestUserDataRefusesUnsafeValues(t *testing.T) {
	base := BootSettings{ServerID: "server-1", Port: 5000, Region: "us-east-1", ArtifactBucket: "b", Arch: "amd64",
		VersionParameter: "/quibly-small/app-version", MemoryMax: "1G", StopTimeoutSeconds: 35, FrontendURL: "https://x.example",
		RedisHost: "r", RedisPort: 6379, KafkaBrokers: "b-1:9096,b-2:9096", KafkaTopic: "quibly.messages", KafkaReplication: 2, DBHost: "d", DBPort: 5432, DBName: "quibly",
		AppSecretArn: "arn:a", KafkaSecretArn: "arn:k", DBSecretArn: "arn:aws:secretsmanager:us-east-1:1:secret:rds!db-x"}
	if _, err := UserData(base); err != nil {
		t.Fatalf("valid settings refused: %v", err)
	}
	for _, bad := range []string{"a'b", "a b", "$(id)", "a;b", "a\nb", "`x`"} {
		s := base
		s.RedisHost = bad
		if _, err := UserData(s); err == nil || !strings.Contains(err.Error(), "RedisHost") {
			t.Errorf("RedisHost %q: error = %v, want a refusal naming it", bad, err)
		}
	}
}
