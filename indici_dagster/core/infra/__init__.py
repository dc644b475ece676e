"""Infrastructure as code (`indici infra plan|apply`): the buckets, the rules table, the IAM
policies and the CloudWatch log groups the settings name, computed as desired state (pure),
compared with what exists, and applied through boto3."""
