// Package terraform writes the resource graph the program registers under Pulumi's
// mocks as a Terraform JSON configuration, and runs Terraform with HashiCorp's AWS
// provider over it. pulumi-aws bridges that provider, so its validators and plan-time
// checks are the ones a real `pulumi up` meets; running them here catches what the
// mocks cannot.
package terraform

// Types maps each pulumi-aws resource type the program uses to the Terraform type
// pulumi-aws bridges. A type missing here fails the conversion by name, so a new
// resource cannot escape the provider's checks. pulumi:index:Stash, Pulumi's own
// "keep the first value" resource, is Terraform's terraform_data.
var Types = map[string]string{
	"aws:acm/certificate:Certificate":                                      "aws_acm_certificate",
	"aws:acm/certificateValidation:CertificateValidation":                  "aws_acm_certificate_validation",
	"aws:appautoscaling/policy:Policy":                                     "aws_appautoscaling_policy",
	"aws:appautoscaling/target:Target":                                     "aws_appautoscaling_target",
	"aws:cloudwatch/metricAlarm:MetricAlarm":                               "aws_cloudwatch_metric_alarm",
	"aws:ec2/defaultSecurityGroup:DefaultSecurityGroup":                    "aws_default_security_group",
	"aws:ec2/flowLog:FlowLog":                                              "aws_flow_log",
	"aws:ec2/eip:Eip":                                                      "aws_eip",
	"aws:ec2/instance:Instance":                                            "aws_instance",
	"aws:ec2/internetGateway:InternetGateway":                              "aws_internet_gateway",
	"aws:ec2/natGateway:NatGateway":                                        "aws_nat_gateway",
	"aws:ec2/routeTable:RouteTable":                                        "aws_route_table",
	"aws:ec2/routeTableAssociation:RouteTableAssociation":                  "aws_route_table_association",
	"aws:ec2/securityGroup:SecurityGroup":                                  "aws_security_group",
	"aws:ec2/securityGroupRule:SecurityGroupRule":                          "aws_security_group_rule",
	"aws:ec2/subnet:Subnet":                                                "aws_subnet",
	"aws:ec2/vpc:Vpc":                                                      "aws_vpc",
	"aws:ec2/vpcEndpoint:VpcEndpoint":                                      "aws_vpc_endpoint",
	"aws:elasticache/replicationGroup:ReplicationGroup":                    "aws_elasticache_replication_group",
	"aws:elasticache/subnetGroup:SubnetGroup":                              "aws_elasticache_subnet_group",
	"aws:iam/instanceProfile:InstanceProfile":                              "aws_iam_instance_profile",
	"aws:iam/role:Role":                                                    "aws_iam_role",
	"aws:iam/rolePolicyAttachment:RolePolicyAttachment":                    "aws_iam_role_policy_attachment",
	"aws:rds/parameterGroup:ParameterGroup":                                "aws_db_parameter_group",
	"aws:rds/clusterParameterGroup:ClusterParameterGroup":                  "aws_rds_cluster_parameter_group",
	"aws:iam/rolePolicy:RolePolicy":                                        "aws_iam_role_policy",
	"aws:kms/alias:Alias":                                                  "aws_kms_alias",
	"aws:kms/key:Key":                                                      "aws_kms_key",
	"aws:lb/listener:Listener":                                             "aws_lb_listener",
	"aws:lb/loadBalancer:LoadBalancer":                                     "aws_lb",
	"aws:lb/targetGroup:TargetGroup":                                       "aws_lb_target_group",
	"aws:lb/targetGroupAttachment:TargetGroupAttachment":                   "aws_lb_target_group_attachment",
	"aws:msk/cluster:Cluster":                                              "aws_msk_cluster",
	"aws:msk/configuration:Configuration":                                  "aws_msk_configuration",
	"aws:msk/scramSecretAssociation:ScramSecretAssociation":                "aws_msk_scram_secret_association",
	"aws:rds/cluster:Cluster":                                              "aws_rds_cluster",
	"aws:rds/clusterInstance:ClusterInstance":                              "aws_rds_cluster_instance",
	"aws:rds/instance:Instance":                                            "aws_db_instance",
	"aws:rds/subnetGroup:SubnetGroup":                                      "aws_db_subnet_group",
	"aws:route53/record:Record":                                            "aws_route53_record",
	"aws:s3/bucketLoggingV2:BucketLoggingV2":                               "aws_s3_bucket_logging",
	"aws:s3/bucketOwnershipControls:BucketOwnershipControls":               "aws_s3_bucket_ownership_controls",
	"aws:wafv2/webAcl:WebAcl":                                              "aws_wafv2_web_acl",
	"aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration":      "aws_wafv2_web_acl_logging_configuration",
	"aws:wafv2/webAclAssociation:WebAclAssociation":                        "aws_wafv2_web_acl_association",
	"aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2": "aws_s3_bucket_lifecycle_configuration",
	"aws:s3/bucketPolicy:BucketPolicy":                                     "aws_s3_bucket_policy",
	"aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock":               "aws_s3_bucket_public_access_block",
	"aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2": "aws_s3_bucket_server_side_encryption_configuration",
	"aws:s3/bucketV2:BucketV2":                       "aws_s3_bucket",
	"aws:s3/bucketVersioningV2:BucketVersioningV2":   "aws_s3_bucket_versioning",
	"aws:secretsmanager/secret:Secret":               "aws_secretsmanager_secret",
	"aws:secretsmanager/secretVersion:SecretVersion": "aws_secretsmanager_secret_version",
	"aws:sns/topic:Topic":                            "aws_sns_topic",
	"aws:sns/topicSubscription:TopicSubscription":    "aws_sns_topic_subscription",
	"aws:ssm/parameter:Parameter":                    "aws_ssm_parameter",
	"pulumi:index:Stash":                             "terraform_data",
}

// Renames are the top-level properties pulumi-aws names other than by camel-casing
// the provider's name, per pulumi-aws type: Pulumi name → Terraform name.
var Renames = map[string]map[string]string{
	"aws:cloudwatch/metricAlarm:MetricAlarm":      {"name": "alarm_name"},
	"aws:sns/topicSubscription:TopicSubscription": {"topic": "topic_arn"},
}
