"""The ECS CloudFormation template (deploy/ecs/indici-ecs.yaml) read the way CloudFormation reads
it: short-form intrinsics (`!Ref`, `!Sub`, `!If`, ...) loaded as their long forms, and a resolver
that evaluates conditions and intrinsics for given parameter values. The resolved resources are
what the stack would create, so tests can send them to moto or compare them with deploy/iam/.

The resolver knows only the functions and attributes the template uses; anything else raises,
so a template change the tests cannot follow fails loudly instead of passing unchecked."""

import re
from pathlib import Path
from typing import Any

import yaml

from indici_dagster_tests.support.deploy import DEPLOY

TEMPLATE = DEPLOY / "ecs" / "indici-ecs.yaml"
ACCOUNT = "123456789012"
REGION = "ap-southeast-2"
EXAMPLE_PARAMETERS = {
    "VpcId": "vpc-0a1b2c3d",
    "PrivateSubnetIds": "subnet-0a1b2c3d,subnet-4e5f6a7b",
    "UiAllowedCidr": "10.8.0.0/16",
    "WarehouseSecurityGroupId": "sg-0a1b2c3d",
    "LandingUri": "s3://kpa-valentia",
    "PartitionedUri": "s3://kpa-indici-partitioned",
    "RulesTable": "indici-rules",
    "ImageTag": "1.0.0",
}
"""What an engineer passes (deploy/README.md), with deploy/iam/'s placeholder names."""
FULL_ARN_SUFFIX = "AbCdEf"
"""The suffix Secrets Manager adds to a secret's name in its full ARN (here, for every secret)."""

_FUNCTIONS = ("Sub", "If", "Select", "Split", "Join", "Equals", "Not", "And", "Or", "GetAZs")


class _Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags."""


def _tag(name: str):
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {"Ref" if name == "Ref" else f"Fn::{name}": value}

    return construct


for _name in ("Ref", "GetAtt", *_FUNCTIONS):
    _Loader.add_constructor(f"!{_name}", _tag(_name))


def load_template(path: Path = TEMPLATE) -> dict:
    """The template as CloudFormation parses it (intrinsics in their long form)."""
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)


class Stack:
    """The template resolved for one set of parameter values (defaults fill the rest)."""

    def __init__(self, template: dict, parameters: dict[str, str], region: str = REGION):
        self.template = template
        self.region = region
        declared = template["Parameters"]
        unknown = set(parameters) - set(declared)
        assert not unknown, f"not parameters of the template: {unknown}"
        self.parameters = {
            name: str(parameters[name] if name in parameters else spec["Default"])
            for name, spec in declared.items()
            if name in parameters or "Default" in spec
        }
        missing = set(declared) - set(self.parameters)
        assert not missing, f"parameters without a value: {missing}"
        for name, spec in declared.items():
            if "AllowedPattern" in spec:
                assert re.fullmatch(spec["AllowedPattern"], self.parameters[name]), name
        self.conditions = {
            name: self.resolve(expression)
            for name, expression in template.get("Conditions", {}).items()
        }

    # ------------------------------------------------------------------ what the stack creates
    def resources(self, kind: str | None = None) -> dict[str, dict]:
        """Logical id -> resolved properties of each resource the stack creates (of `kind`)."""
        return {
            name: self.resolve(resource.get("Properties", {}))
            for name, resource in self.template["Resources"].items()
            if self.conditions.get(resource.get("Condition", ""), True)
            and (kind is None or resource["Type"] == kind)
        }

    def outputs(self) -> dict[str, str]:
        """Output name -> resolved value, for the outputs the stack has."""
        return {
            name: self.resolve(output["Value"])
            for name, output in self.template.get("Outputs", {}).items()
            if self.conditions.get(output.get("Condition", ""), True)
        }

    # ------------------------------------------------------------------ intrinsics
    def resolve(self, node: Any) -> Any:
        """`node` with every intrinsic function and condition evaluated."""
        if isinstance(node, list):
            return [v for v in (self.resolve(item) for item in node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            if key == "Ref":
                return self._ref(value)
            if key == "Condition":
                return self.conditions[value]
            if key.startswith("Fn::"):
                return getattr(self, "_" + key[4:].lower())(value)
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not _NO_VALUE}

    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": self.region,
            "AWS::Partition": "aws",
            "AWS::StackName": "indici",
            "AWS::NoValue": _NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            spec = self.template["Parameters"][name]
            if spec["Type"].startswith("List<") or spec["Type"] == "CommaDelimitedList":
                return self.parameters[name].split(",")
            return self.parameters[name]
        resource = self.template["Resources"][name]
        properties = self.resolve(resource.get("Properties", {}))
        kind = resource["Type"]
        if kind == "AWS::ECS::TaskDefinition":
            return f"arn:aws:ecs:{self.region}:{ACCOUNT}:task-definition/{properties['Family']}:1"
        named = {
            "AWS::ECS::Cluster": "ClusterName",
            "AWS::Logs::LogGroup": "LogGroupName",
            "AWS::IAM::Role": "RoleName",
            "AWS::ECR::Repository": "RepositoryName",
        }
        if kind in named:
            return properties[named[kind]]
        if kind == "AWS::SecretsManager::Secret":  # its full ARN, with the random suffix
            return f"arn:aws:secretsmanager:{self.region}:{ACCOUNT}:secret:{name}-{FULL_ARN_SUFFIX}"
        return f"{name}-id"  # security groups, namespace, target group, listener, ...

    def _getatt(self, value: list[str]) -> str:
        name, attribute = value
        resource = self.template["Resources"][name]
        properties = self.resolve(resource.get("Properties", {}))
        known = {
            ("AWS::IAM::Role", "Arn"): lambda: (
                f"arn:aws:iam::{ACCOUNT}:role/{properties['RoleName']}"
            ),
            ("AWS::ECR::Repository", "RepositoryUri"): lambda: (
                f"{ACCOUNT}.dkr.ecr.{self.region}.amazonaws.com/{properties['RepositoryName']}"
            ),
            ("AWS::RDS::DBInstance", "Endpoint.Address"): lambda: (
                f"{name.lower()}.abcdefghijkl.{self.region}.rds.amazonaws.com"
            ),
            ("AWS::ServiceDiscovery::Service", "Arn"): lambda: (
                f"arn:aws:servicediscovery:{self.region}:{ACCOUNT}:service/srv-0123"
            ),
            ("AWS::ElasticLoadBalancingV2::LoadBalancer", "DNSName"): lambda: (
                f"internal-{properties['Name']}.{self.region}.elb.amazonaws.com"
            ),
        }
        return known[(resource["Type"], attribute)]()

    def _sub(self, value: str | list) -> str:
        text, variables = (value, {}) if isinstance(value, str) else value
        variables = {key: self.resolve(v) for key, v in variables.items()}

        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name:
                return self._getatt(name.split(".", 1))
            return str(self._ref(name))

        return re.sub(r"\$\{([^!}][^}]*)\}", replace, text)

    def _if(self, value: list) -> Any:
        condition, when_true, when_false = value
        return self.resolve(when_true if self.conditions[condition] else when_false)

    def _equals(self, value: list) -> bool:
        left, right = (self.resolve(v) for v in value)
        return left == right

    def _not(self, value: list) -> bool:
        return not self.resolve(value[0])

    def _select(self, value: list) -> Any:
        index, items = value
        return self.resolve(items)[int(index)]

    def _split(self, value: list) -> list[str]:
        separator, text = value
        return self.resolve(text).split(separator)

    def _join(self, value: list) -> str:
        separator, items = value
        return separator.join(self.resolve(items))


_NO_VALUE = object()


def ecs_request(properties: dict) -> dict:
    """A TaskDefinition's CloudFormation properties as an ECS RegisterTaskDefinition request
    (the same names with a lower-case first letter; log driver options are kept as they are)."""

    def convert(node: Any, keep_keys: bool = False) -> Any:
        if isinstance(node, list):
            return [convert(item) for item in node]
        if isinstance(node, dict):
            return {
                (key if keep_keys else key[0].lower() + key[1:]): convert(value, key == "Options")
                for key, value in node.items()
            }
        return node

    return convert(properties)
