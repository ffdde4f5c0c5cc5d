# Adapter for an AWS stack (ENV = the Pulumi stack name, see ../common.sh): the stack
# outputs name the instances (SERVER_ID -> instance id), the ALB, the artifact bucket,
# the app's port and architecture and the SSM version parameters; the AWS CLI does the
# rest. Nodes are private (no SSH): the restart and the /health probe go through SSM Run
# Command. Each node boots the release its own parameter names
# (<nodeVersionParameterPrefix><SERVER_ID>/app-version); a deploy moves a node's parameter
# right before restarting that node, and the stack's parameter (what new nodes start on)
# once every node runs the release.
#
# QUIBLY_STACK_OUTPUTS=FILE reads the outputs from FILE (`pulumi stack output --json`)
# instead of asking Pulumi: what the tests use, with no CLI and no account.
# QUIBLY_SSM_RUN=PROGRAM runs `PROGRAM INSTANCE_ID COMMAND` instead of SSM Run Command:
# the tests' stand-in for an instance, as the local AWS API accepts a command but runs
# nothing. AWS_ENDPOINT_URL (the AWS CLI's own setting) points the CLI at that API.
# shellcheck shell=bash

PULUMI=${PULUMI:-pulumi}

adapter_init() {
  command -v jq >/dev/null || apt_install jq
  if [ -n "${QUIBLY_STACK_OUTPUTS:-}" ]; then
    STACK_JSON=$(cat "$QUIBLY_STACK_OUTPUTS") || die "cannot read $QUIBLY_STACK_OUTPUTS"
  else
    command -v "$PULUMI" >/dev/null || die "the Pulumi CLI is not installed (README, Infrastructure)"
    STACK_JSON=$("$PULUMI" -C "$ROOT/infra" stack output --stack "$OPS_ENV" --json) \
      || die "cannot read the outputs of stack $OPS_ENV (pulumi -C infra stack output --stack $OPS_ENV)"
  fi
  if [ -z "$DRY_RUN" ]; then
    command -v aws >/dev/null || die "the AWS CLI is not installed"
    aws sts get-caller-identity >/dev/null || die "no AWS credentials (aws sts get-caller-identity failed)"
    AWS_REGION=${AWS_REGION:-$("$PULUMI" -C "$ROOT/infra" config get aws:region --stack "$OPS_ENV")}
    export AWS_REGION
  fi
  VERSION_PARAM=$(out appVersionParameter)
  NODE_PARAM_PREFIX=$(out nodeVersionParameterPrefix)
  BUCKET=$(out artifactBucket)
  APP_PORT=$(out appPort)
  ARCH=$(out appArch)
  local k
  for k in VERSION_PARAM NODE_PARAM_PREFIX BUCKET APP_PORT ARCH; do
    [ -n "${!k}" ] || die "stack $OPS_ENV lacks an output this script needs ($k): run \`make up ENV=$OPS_ENV\` with this checkout's infra/ first"
  done
}

node_param() { echo "${NODE_PARAM_PREFIX}$1/app-version"; }

out() { jq -r --arg k "$1" '.[$k] // empty' <<<"$STACK_JSON"; }
instance_of() { jq -r --arg n "$1" '.instances[$n] // empty' <<<"$STACK_JSON"; }

# The ALB's target group into TG_ARN, found once from the ALB's DNS name (the stack
# exports no ARN). Called outside $(...), so the lookup is kept for the next call.
target_group() {
  [ -z "${TG_ARN:-}" ] || return 0
  if [ -n "$DRY_RUN" ]; then TG_ARN='$TARGET_GROUP_ARN'; return 0; fi
  local lb
  lb=$(aws elbv2 describe-load-balancers --query "LoadBalancers[?DNSName=='$(out albDnsName)'].LoadBalancerArn" --output text)
  [ -n "$lb" ] && [ "$lb" != None ] || die "no load balancer named $(out albDnsName) in $AWS_REGION"
  TG_ARN=$(aws elbv2 describe-target-groups --load-balancer-arn "$lb" --query 'TargetGroups[0].TargetGroupArn' --output text)
  [ -n "$TG_ARN" ] && [ "$TG_ARN" != None ] || die "no target group behind ALB $(out albDnsName)"
}

target() { echo "Id=$(instance_of "$1"),Port=$APP_PORT"; }

list_nodes() { jq -r '.instances | keys[]' <<<"$STACK_JSON" | sort -t- -k2 -n; }

# ssm_run NODE SCRIPT runs SCRIPT on NODE as root through SSM and prints its output.
ssm_run() {
  local inst id inv
  inst=$(instance_of "$1")
  if [ -n "$DRY_RUN" ]; then
    sh_cmd aws ssm send-command --instance-ids "$inst" --document-name AWS-RunShellScript \
      --parameters "commands=[\"$2\"]"
    return 0
  fi
  if [ -n "${QUIBLY_SSM_RUN:-}" ]; then
    "$QUIBLY_SSM_RUN" "$inst" "$2"
    return
  fi
  id=$(aws ssm send-command --instance-ids "$inst" --document-name AWS-RunShellScript \
    --comment "quibly ops $OPS_ENV" --parameters "$(jq -cn --arg c "$2" '{commands: [$c]}')" \
    --query Command.CommandId --output text) || return 1
  # The waiter fails on a failed command as on a timeout; the invocation tells which.
  aws ssm wait command-executed --command-id "$id" --instance-id "$inst" 2>/dev/null || true
  inv=$(aws ssm get-command-invocation --command-id "$id" --instance-id "$inst" --output json) || return 1
  jq -r .StandardOutputContent <<<"$inv"
  [ "$(jq -r .Status <<<"$inv")" = Success ] || {
    printf '%s: the command ended %s: %s\n' "$1" "$(jq -r .Status <<<"$inv")" "$(jq -r .StandardErrorContent <<<"$inv")" >&2
    return 1
  }
}

node_version() {
  [ -n "$DRY_RUN" ] && { echo '?'; return; }
  ssm_run "$1" 'basename "$(readlink /opt/quibly/current)"' | tr -d '\r\n'
}

# Deregistration stops new requests at once; the target group's deregistration delay
# lets the node's connections finish; the wait returns when it is out.
lb_drain() {
  target_group
  sh_cmd aws elbv2 deregister-targets --target-group-arn "$TG_ARN" --targets "$(target "$1")"
  sh_cmd aws elbv2 wait target-deregistered --target-group-arn "$TG_ARN" --targets "$(target "$1")"
}

# quibly-fetch (ExecStartPre of quibly.service) puts the version named by the node's own
# parameter in place, so moving that parameter and restarting is the switch; no other
# node's parameter moves, so a node that reboots meanwhile keeps what it ran.
node_run_version() {
  sh_cmd aws ssm put-parameter --name "$(node_param "$1")" --type String --overwrite --value "$2" >/dev/null
  ssm_run "$1" "systemctl restart quibly.service && readlink /opt/quibly/current" >&2
}

node_health() {
  [ -n "$DRY_RUN" ] && { echo 200; return; }
  ssm_run "$1" "curl -s -o /dev/null -m 3 -w '%{http_code}' http://127.0.0.1:$APP_PORT/health || true" | tr -d '\r\n'
}

lb_ready() {
  target_group
  sh_cmd aws elbv2 register-targets --target-group-arn "$TG_ARN" --targets "$(target "$1")"
}

lb_state() {
  [ -n "$DRY_RUN" ] && { echo '?'; return; }
  target_group
  aws elbv2 describe-target-health --target-group-arn "$TG_ARN" --targets "$(target "$1")" \
    --query 'TargetHealthDescriptions[0].TargetHealth.State' --output text
}
lb_healthy() { [ "$(lb_state "$1")" = healthy ]; }

version_available() {
  [ -n "$DRY_RUN" ] && return 0
  aws s3api head-object --bucket "$BUCKET" --key "quibly/$1/quibly-linux-$ARCH" >/dev/null 2>&1
}

# The stack's parameter is the version every node was last deployed to (and new nodes
# start on); the one beside it, the version before. Kept in SSM, so any operator's
# rollback finds them.
versions_get() {
  if [ -n "$DRY_RUN" ]; then echo "${QUIBLY_DRY_RUN_VERSIONS:-- -}"; return; fi
  local cur prev
  cur=$(aws ssm get-parameter --name "$VERSION_PARAM" --query Parameter.Value --output text 2>/dev/null || echo -)
  prev=$(aws ssm get-parameter --name "$VERSION_PARAM-previous" --query Parameter.Value --output text 2>/dev/null || echo -)
  echo "$cur $prev"
}

# At the start of a deploy only the rollback target is recorded: the stack's version
# moves in versions_done, once every node runs the new one.
versions_set() {
  sh_cmd aws ssm put-parameter --name "$VERSION_PARAM-previous" --type String --overwrite --value "$2" >/dev/null
}

versions_done() {
  sh_cmd aws ssm put-parameter --name "$VERSION_PARAM" --type String --overwrite --value "$1" >/dev/null
  # The stack's own record, so the next `pulumi up` does not set the parameter back.
  sh_cmd "$PULUMI" -C "$ROOT/infra" config set --path quibly:app.version "$1" --stack "$OPS_ENV"
}

node_stop() { ssm_run "$1" "systemctl stop quibly.service" >&2; }

# fleet.instances is bounded by fleet.maxInstances (infra/internal/config).
scale_apply() {
  sh_cmd "$PULUMI" -C "$ROOT/infra" config set --path quibly:fleet.instances "$1" --stack "$OPS_ENV"
  sh_cmd "$PULUMI" -C "$ROOT/infra" up --stack "$OPS_ENV" --yes --skip-preview
  if [ -z "$DRY_RUN" ]; then
    STACK_JSON=$("$PULUMI" -C "$ROOT/infra" stack output --stack "$OPS_ENV" --json)
  fi
}

# db_password_rotate (rotate-db-password.sh): a new password in the servers' login
# secret, the role changed to it by quibly-db-setup on the first node, then recorded in
# the stack's config. The password goes through files and stdin only: never an argument
# (process list) and never a printed command.
db_password_rotate() {
  local secret node old user tmp
  secret=$(out databaseAppSecretArn)
  [ -n "$secret" ] || die "stack $OPS_ENV lacks the output databaseAppSecretArn: run \`make up ENV=$OPS_ENV\` with this checkout's infra/ first"
  node=$(list_nodes | head -n 1)
  [ -n "$node" ] || die "$OPS_ENV has no nodes to run quibly-db-setup on"
  tmp=$(mktemp -d) # 0700: only this user reads the password files
  # shellcheck disable=SC2064 # $tmp is meant to be expanded now
  trap "rm -rf '$tmp'" EXIT
  if [ -n "$DRY_RUN" ]; then
    user='$USER'
  else
    old=$(aws secretsmanager get-secret-value --secret-id "$secret" --query SecretString --output text) \
      || die "cannot read the secret $secret"
    user=$(jq -er .username <<<"$old") || die "the secret $secret holds no username"
    printf '%s' "$old" >"$tmp/old.json"
  fi
  head -c 24 /dev/urandom | od -An -v -tx1 | tr -d ' \n' >"$tmp/password"
  jq -cn --arg u "$user" --rawfile p "$tmp/password" '{username: $u, password: $p}' >"$tmp/new.json"
  step "new password into the secret" \
    sh_cmd aws secretsmanager put-secret-value --secret-id "$secret" --secret-string "file://$tmp/new.json" >/dev/null \
    || die "could not write the secret $secret; nothing changed"
  if ! step "$node: quibly-db-setup (the role takes the secret's password)" ssm_run "$node" /usr/local/bin/quibly-db-setup >&2; then
    warn "the role kept its password: putting the old one back into the secret"
    aws secretsmanager put-secret-value --secret-id "$secret" --secret-string "file://$tmp/old.json" >/dev/null \
      || die "could not put the old password back into $secret: servers' new connections fail until quibly-db-setup runs (or the secret's previous version is made current)"
    die "quibly-db-setup failed on $node (see above); the password is unchanged"
  fi
  step "record it in the stack's config (quibly:dbAppPassword, encrypted)" \
    sh_cmd "$PULUMI" -C "$ROOT/infra" config set --secret quibly:dbAppPassword --stack "$OPS_ENV" <"$tmp/password" \
    || die "the password is rotated but not in the stack's config: the next \`pulumi up\` would put the old one back; run: pulumi -C infra config set --secret quibly:dbAppPassword --stack $OPS_ENV (value from: aws secretsmanager get-secret-value --secret-id $secret)"
}

# RDS is private: run backup/restore from a host inside the VPC (an instance through
# SSM Session Manager), as the master user (databaseSecretArn), verifying the server's
# certificate against RDS's authorities as the servers do.
database_url() {
  local secret user pass name ca=$LOCAL/rds-ca.pem bundle
  secret=$(aws secretsmanager get-secret-value --secret-id "$(out databaseSecretArn)" --query SecretString --output text)
  user=$(jq -r .username <<<"$secret")
  pass=$(jq -r '.password | @uri' <<<"$secret")
  name=$("$PULUMI" -C "$ROOT/infra" config get --path quibly:database.name --stack "$OPS_ENV" 2>/dev/null || echo quibly)
  if [ ! -s "$ca" ]; then
    mkdir -p "$LOCAL"
    bundle=$(out rdsCaBundleUrl)
    [ -n "$bundle" ] || die "stack $OPS_ENV lacks the output rdsCaBundleUrl: run \`make up ENV=$OPS_ENV\` with this checkout's infra/ first"
    curl -fsS --retry 3 -o "$ca.part" "$bundle" && mv "$ca.part" "$ca" \
      || die "cannot download RDS's certificate authorities ($bundle)"
  fi
  echo "postgresql://$user:$pass@$(out databaseHost):5432/$name?sslmode=verify-full&sslrootcert=$ca"
}
