// Package mocks runs the program with Pulumi's mock engine and records every
// resource it registers. The tests assert on the record; `make plan` prints it.
// The mock answers with plausible AWS-shaped outputs (endpoints, ARNs) so the
// values that flow into user data and alarms look like the real ones.
package mocks

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"gopkg.in/yaml.v3"

	"github.com/quibly/quibly/infra/internal/config"
)

// Project is the Pulumi project name (Pulumi.yaml).
const Project = "quibly"

// Resource is one registered resource as the engine saw it: its inputs and the
// resource options that change what the engine does with it.
type Resource struct {
	Type                string
	Name                string
	URN                 string
	ID                  string // the id the mock answered with
	Parent              string
	Custom              bool
	IgnoreChanges       []string
	Protect             bool
	RetainOnDelete      bool
	DeleteBeforeReplace bool
	// DependsOn are the URNs of the resources named in pulumi.DependsOn.
	DependsOn []string
	// PropertyDeps are, per input, the URNs of the resources whose outputs it was built from.
	PropertyDeps map[string][]string
	Inputs       resource.PropertyMap
	// Outputs are what the mock answered, as the engine would keep them in state.
	Outputs resource.PropertyMap
}

// Recorder is a pulumi.MockResourceMonitor that keeps what was registered.
type Recorder struct {
	mu        sync.Mutex
	Resources []Resource
	Region    string
	// Prior is the state of an earlier run (Recorder.State), so a second run sees
	// what the engine would: a pulumi:index:Stash answers with the value it first stored.
	Prior map[string]resource.PropertyMap
	// Parameter, if set, answers SSM parameter lookups (a test against a local AWS
	// API reads the image id there); otherwise a public AMI parameter names AMI.
	Parameter func(name string) (string, error)
	stack     string
}

// key names a resource across runs, as its URN does.
func key(typ, name string) string { return typ + "::" + name }

// State is what this run leaves in the engine's state, for the next run's Prior.
func (r *Recorder) State() map[string]resource.PropertyMap {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]resource.PropertyMap{}
	for _, res := range r.Resources {
		if res.Custom {
			out[key(res.Type, res.Name)] = res.Outputs
		}
	}
	return out
}

// NewResource records the resource and answers with its inputs plus computed outputs.
func (r *Recorder) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	rpc := args.RegisterRPC
	res := Resource{Type: args.TypeToken, Name: args.Name, Custom: args.Custom, Inputs: args.Inputs}
	if rpc != nil {
		res.Parent = rpc.GetParent()
		res.IgnoreChanges = rpc.GetIgnoreChanges()
		res.Protect = rpc.GetProtect()
		res.RetainOnDelete = rpc.GetRetainOnDelete()
		res.DeleteBeforeReplace = rpc.GetDeleteBeforeReplace()
		res.DependsOn = rpc.GetDependencies()
		for k, deps := range rpc.GetPropertyDependencies() {
			if len(deps.GetUrns()) > 0 {
				if res.PropertyDeps == nil {
					res.PropertyDeps = map[string][]string{}
				}
				res.PropertyDeps[k] = deps.GetUrns()
			}
		}
		res.URN = r.urn(resource.URN(rpc.GetParent()), args.TypeToken, args.Name)
		// An input built from an output the mocks left unknown reaches them not at
		// all, only its dependencies do: refuse it, or a check of the record would
		// miss that property without a word.
		for k := range res.PropertyDeps {
			if _, ok := args.Inputs[resource.PropertyKey(k)]; !ok {
				return "", nil, fmt.Errorf("mock: %s %s: input %q is unknown under the mocks (give the output it comes from a value in Recorder.outputs)", args.TypeToken, args.Name, k)
			}
		}
	}
	id, outs := args.Name, resource.PropertyMap{}
	if args.Custom {
		id, outs = r.outputs(args)
	}
	res.ID, res.Outputs = id, outs
	r.mu.Lock()
	r.Resources = append(r.Resources, res)
	r.mu.Unlock()
	return id, outs, nil
}

// Call answers the invokes the program makes as AWS would, so a lookup the
// program forgot, or a filter it left out, shows in what it builds.
func (r *Recorder) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	switch args.Token {
	case "aws:index/getAvailabilityZones:getAvailabilityZones":
		return availabilityZones(r.region(), args.Args)
	case "aws:ssm/getParameter:getParameter":
		name, value := args.Args["name"].StringValue(), AMI
		switch {
		case r.Parameter != nil:
			v, err := r.Parameter(name)
			if err != nil {
				return nil, fmt.Errorf("mock: %s: %w", name, err)
			}
			value = v
		case !strings.HasPrefix(name, "/aws/service/ami-"):
			return nil, fmt.Errorf("mock: ParameterNotFound: %s", name)
		}
		return resource.NewPropertyMapFromMap(map[string]any{"name": name, "type": "String", "id": name,
			"value": value, "insecureValue": value, "version": 1,
			"arn": fmt.Sprintf("arn:aws:ssm:%s::parameter%s", r.region(), name)}), nil
	case "aws:index/getCallerIdentity:getCallerIdentity":
		return resource.NewPropertyMapFromMap(map[string]any{"accountId": Account, "id": Account,
			"arn": "arn:aws:iam::" + Account + ":user/deployer", "userId": "AIDAEXAMPLE"}), nil
	case "aws:elb/getServiceAccount:getServiceAccount":
		// The provider knows the regions opened before August 2022 and errors on others.
		region := r.region()
		if v, ok := args.Args["region"]; ok && v.IsString() {
			region = v.StringValue()
		}
		id, ok := elbAccounts[region]
		if !ok {
			return nil, fmt.Errorf("mock: no Elastic Load Balancing account for region %s", region)
		}
		return resource.NewPropertyMapFromMap(map[string]any{"id": id, "arn": "arn:aws:iam::" + id + ":root", "region": region}), nil
	case "aws:index/getPartition:getPartition":
		return resource.NewPropertyMapFromMap(map[string]any{"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}), nil
	}
	return nil, fmt.Errorf("mock: no answer for invoke %s", args.Token)
}

// elbAccounts are the Elastic Load Balancing accounts that write access logs, for
// the regions the tests use (Elastic Load Balancing user guide, Enable access logs).
var elbAccounts = map[string]string{
	"us-east-1": "127311923021", "us-east-2": "033677994240", "us-west-2": "797873946194",
	"eu-west-1": "156460612806", "eu-central-1": "054676820928",
}

// AutoName is the name Pulumi gives a resource whose name the program leaves out:
// its logical name and a random suffix (here a fixed one).
func AutoName(logical string) string { return logical + "-1a2b3c4" }

// urn is the URN the engine gives a resource, as other resources' dependencies name it.
func (r *Recorder) urn(parent resource.URN, typ, name string) string {
	if parent == "" {
		return string(resource.NewURN(tokens.QName(r.stack), Project, "", tokens.Type(typ), name))
	}
	return string(resource.NewURN(parent.Stack(), parent.Project(), parent.QualifiedType(), tokens.Type(typ), name))
}

// Account is the account id the mock answers with; AMI the image a public SSM parameter resolves to.
const (
	Account = "123456789012"
	AMI     = "ami-0abcdef1234567890"
)

func (r *Recorder) region() string {
	if r.Region == "" {
		return "us-east-1"
	}
	return r.Region
}

func (r *Recorder) outputs(args pulumi.MockResourceArgs) (string, resource.PropertyMap) {
	in := args.Inputs
	outs := in.Copy()
	// str reads what the resource will hold: its inputs and what was set below.
	str := func(k string) string {
		if v, ok := outs[resource.PropertyKey(k)]; ok && v.IsString() {
			return v.StringValue()
		}
		return ""
	}
	set := func(k string, v any) { outs[resource.PropertyKey(k)] = resource.NewPropertyValue(v) }
	region, acct := r.region(), Account
	id := args.Name + "-id"
	service := strings.SplitN(strings.TrimPrefix(args.TypeToken, "aws:"), "/", 2)[0]
	set("arn", fmt.Sprintf("arn:aws:%s:%s:%s:%s", service, region, acct, args.Name))

	// Pulumi auto-names a resource whose name the program leaves out: the logical
	// name and a random suffix (here a fixed one), or the prefix and a suffix.
	autoname := func(k string) {
		if str(k) == "" {
			if p := str(k + "Prefix"); p != "" {
				set(k, p+"20261202")
			} else {
				set(k, AutoName(args.Name))
			}
		}
	}
	switch args.TypeToken {
	case "aws:lb/loadBalancer:LoadBalancer", "aws:lb/targetGroup:TargetGroup", "aws:msk/configuration:Configuration",
		"aws:rds/subnetGroup:SubnetGroup", "aws:elasticache/subnetGroup:SubnetGroup", "aws:sns/topic:Topic",
		"aws:secretsmanager/secret:Secret", "aws:rds/parameterGroup:ParameterGroup", "aws:rds/clusterParameterGroup:ClusterParameterGroup",
		"aws:wafv2/webAcl:WebAcl":
		autoname("name")
	case "aws:msk/cluster:Cluster":
		autoname("clusterName")
	}
	switch args.TypeToken {
	case "pulumi:index:Stash":
		// The engine keeps the first value a stash was given and answers with it ever after.
		outs["output"] = in["input"]
		if prior, ok := r.Prior[key(args.TypeToken, args.Name)]; ok {
			outs["output"] = prior["output"]
		}
	case "aws:lb/loadBalancer:LoadBalancer":
		set("dnsName", fmt.Sprintf("%s-1234567890.%s.elb.amazonaws.com", str("name"), region))
		set("arnSuffix", "app/"+str("name")+"/0123456789abcdef")
		set("zoneId", "Z35SXDOTRQ7X7K")
	case "aws:lb/targetGroup:TargetGroup":
		set("arnSuffix", "targetgroup/"+str("name")+"/0123456789abcdef")
	case "aws:elasticache/replicationGroup:ReplicationGroup":
		rg := str("replicationGroupId")
		set("primaryEndpointAddress", "master."+rg+".abc123.use1.cache.amazonaws.com")
		set("configurationEndpointAddress", "clustercfg."+rg+".abc123.use1.cache.amazonaws.com")
	case "aws:msk/cluster:Cluster":
		n := 0
		if v, ok := in["numberOfBrokerNodes"]; ok && v.IsNumber() {
			n = int(v.NumberValue())
		}
		var brokers []string
		for i := 1; i <= n; i++ {
			brokers = append(brokers, fmt.Sprintf("b-%d.%s.abc123.c2.kafka.%s.amazonaws.com:9096", i, str("clusterName"), region))
		}
		set("bootstrapBrokersSaslScram", strings.Join(brokers, ","))
		set("clusterName", str("clusterName"))
	case "aws:msk/configuration:Configuration":
		set("latestRevision", 1)
	case "aws:rds/instance:Instance":
		host := str("identifier") + ".abc123." + region + ".rds.amazonaws.com"
		set("address", host)
		set("endpoint", host+":5432")
		set("masterUserSecrets", []any{map[string]any{"secretArn": fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:rds!db-%s", region, acct, args.Name)}})
	case "aws:rds/cluster:Cluster":
		set("endpoint", str("clusterIdentifier")+".cluster-abc123."+region+".rds.amazonaws.com")
		set("readerEndpoint", str("clusterIdentifier")+".cluster-ro-abc123."+region+".rds.amazonaws.com")
		set("masterUserSecrets", []any{map[string]any{"secretArn": fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:rds!cluster-%s", region, acct, args.Name)}})
	case "aws:s3/bucketV2:BucketV2":
		set("bucket", str("bucketPrefix")+"20261128")
		set("arn", "arn:aws:s3:::"+str("bucketPrefix")+"20261128")
	case "aws:secretsmanager/secret:Secret":
		set("arn", fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-AbCdEf", region, acct, str("name")))
	case "aws:acm/certificate:Certificate":
		set("domainValidationOptions", []any{map[string]any{"domainName": str("domainName"),
			"resourceRecordName": "_0123abcd." + str("domainName") + ".", "resourceRecordType": "CNAME",
			"resourceRecordValue": "_4567efgh.acm-validations.aws."}})
		set("arn", fmt.Sprintf("arn:aws:acm:%s:%s:certificate/%s", region, acct, args.Name))
	case "aws:acm/certificateValidation:CertificateValidation":
		set("certificateArn", str("certificateArn"))
	case "aws:route53/record:Record":
		set("fqdn", strings.TrimSuffix(str("name"), "."))
	case "aws:kms/key:Key":
		set("keyId", "0000-"+args.Name)
	case "aws:iam/role:Role", "aws:iam/instanceProfile:InstanceProfile":
		set("name", str("namePrefix")+"0001")
	case "aws:ec2/instance:Instance":
		id = "i-" + strings.ReplaceAll(args.Name, "-", "")
	case "aws:ssm/parameter:Parameter":
		set("arn", fmt.Sprintf("arn:aws:ssm:%s:%s:parameter%s", region, acct, str("name")))
	}
	return id, outs
}

// ByType returns the recorded custom resources of one type, sorted by name.
func (r *Recorder) ByType(typ string) []Resource {
	var out []Resource
	for _, res := range r.Resources {
		if res.Type == typ {
			out = append(out, res)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// StackFile reads environments/Pulumi.<stack>.yaml into the engine's config map
// (objects as JSON strings, as the Pulumi CLI passes them), refusing keys the
// program does not know so a typo in a stack file fails.
func StackFile(dir, stack string) (map[string]string, error) {
	path := filepath.Join(dir, "Pulumi."+stack+".yaml")
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("stack %q: %w", stack, err)
	}
	// The CLI writes its own keys beside config once a stack has secrets
	// (`pulumi config set --secret`); they must not make the file unreadable.
	var file struct {
		Config          map[string]any `yaml:"config"`
		EncryptionSalt  string         `yaml:"encryptionsalt"`
		SecretsProvider string         `yaml:"secretsprovider"`
		EncryptedKey    string         `yaml:"encryptedkey"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	known := map[string]bool{"aws:region": true}
	for _, k := range slices.Concat(config.Keys, config.FlagKeys, config.SecretKeys) {
		known[config.Namespace+":"+k] = true
	}
	out := map[string]string{}
	for k, v := range file.Config {
		if !known[k] {
			return nil, fmt.Errorf("%s: unknown setting %q", path, k)
		}
		switch v := v.(type) {
		case map[string]any:
			if _, secure := v["secure"]; secure {
				continue // an encrypted secret: offline runs cannot decrypt it, so it is treated as unset (generated)
			}
			b, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", path, k, err)
			}
			out[k] = string(b)
		case string:
			out[k] = v
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", path, k, err)
			}
			out[k] = string(b)
		}
	}
	return out, nil
}

// Run executes body under mocks with a stack's config, as `pulumi preview` would
// (a dry run), and returns the record.
func Run(stack string, cfg map[string]string, body pulumi.RunFunc) (*Recorder, error) {
	return RunWith(&Recorder{}, true, stack, cfg, body)
}

// RunWith executes body under mocks into rec: as a preview when dryRun, else as the
// update of `pulumi up`. rec.Prior, if set, is the state an earlier run left.
func RunWith(rec *Recorder, dryRun bool, stack string, cfg map[string]string, body pulumi.RunFunc) (*Recorder, error) {
	rec.Region, rec.stack = cfg["aws:region"], stack
	withConfig := func(info *pulumi.RunInfo) { info.Config = cfg; info.DryRun = dryRun }
	err := pulumi.RunErr(body, pulumi.WithMocks(Project, stack, rec), withConfig)
	return rec, err
}
