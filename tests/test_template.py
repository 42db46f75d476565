"""template.yaml: what the stack promises operators, read from the template itself.

The offline tool checks (sam validate, cfn-lint on the transformed template,
checkov, sam build and the artifact smoke test) run in
``scripts/check-template.sh``; these tests pin the product decisions those
tools cannot know: least privilege per function, retention, rotation, alarms
on the metrics the code really emits, and configuration the code accepts.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.config import Settings
from shared.models import MediaItem
from shared.observability import METRICS_NAMESPACE

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = {"IngestFunction": "ingest", "ServeFunction": "serve", "RefreshFunction": "refresh"}
# The design brief's configuration table.
CONFIG_VARIABLES = {
    "MEDIA_TABLE",
    "MEDIA_BUCKET",
    "UPLOADS_PREFIX",
    "TOKEN_SECRET_ID",
    "IG_USER_ID",
    "GRAPH_API_URL",
    "MEDIA_HOSTS",
    "EVENT_TIMEZONE",
    "POST_GRACE_HOURS",
}


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation short tags into their long form."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


@cache
def _template() -> dict[str, Any]:
    # _CfnLoader is a SafeLoader: only plain data and CloudFormation tags.
    text = (ROOT / "template.yaml").read_text()
    loaded: dict[str, Any] = yaml.load(text, Loader=_CfnLoader)  # noqa: S506
    return loaded


@pytest.fixture
def template() -> dict[str, Any]:
    """GIVEN the SAM template as written."""
    return _template()


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == kind
    }


def _statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    policies = template["Resources"][role]["Properties"]["Policies"]
    return [statement for policy in policies for statement in policy["PolicyDocument"]["Statement"]]


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role_of(template: dict[str, Any], function: str) -> str:
    role: str = template["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    return role


def _environment(template: dict[str, Any], function: str) -> dict[str, Any]:
    shared = template["Globals"]["Function"]["Environment"]["Variables"]
    own = template["Resources"][function]["Properties"]["Environment"]["Variables"]
    return {**shared, **own}


def _string_literals(package: str) -> Iterator[str]:
    for path in (*(ROOT / package).glob("*.py"), *(ROOT / "shared").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                yield node.value


# ------------------------------------------------------------ functions


@pytest.mark.parametrize(("function", "package"), sorted(FUNCTIONS.items()))
def test_function_runtime_handler_and_logging(
    template: dict[str, Any], function: str, package: str
) -> None:
    """GIVEN a function WHEN deployed THEN it runs the package's handler on
    python3.13/arm64 with explicit memory and timeout, JSON logs to its own
    log group that has a retention."""
    globals_ = template["Globals"]["Function"]
    properties = template["Resources"][function]["Properties"]
    assert globals_["Runtime"] == "python3.13"
    assert globals_["Architectures"] == ["arm64"]
    assert properties["Handler"] == f"{package}.app.handler"
    assert (ROOT / package / "app.py").is_file()
    assert isinstance(properties["MemorySize"], int)
    assert isinstance(properties["Timeout"], int)
    logging = properties["LoggingConfig"]
    assert logging["LogFormat"] == "JSON"
    log_group = template["Resources"][logging["LogGroup"]["Ref"]]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_function_built_from_its_own_makefile_target(
    template: dict[str, Any], function: str
) -> None:
    """GIVEN a function WHEN sam build runs THEN a target of sam-build/Makefile
    packages it from the repository root (the folder SAM copies holds only
    that Makefile, no venv)."""
    resource = template["Resources"][function]
    assert resource["Metadata"]["BuildMethod"] == "makefile"
    assert resource["Metadata"]["WorkingDirectory"] == "."
    code_dir = ROOT / resource["Properties"]["CodeUri"]
    assert sorted(path.name for path in code_dir.iterdir()) == ["Makefile"]
    assert re.search(rf"^build-{function}:", (code_dir / "Makefile").read_text(), re.M)


@pytest.mark.parametrize(("function", "package"), sorted(FUNCTIONS.items()))
def test_environment_is_the_design_contract_and_parses(
    template: dict[str, Any], function: str, package: str
) -> None:
    """GIVEN a function's environment with every parameter at its default
    WHEN the code reads its settings THEN they parse and carry those values,
    and only contract variables (plus Powertools') are set."""
    environment = _environment(template, function)
    parameters = template["Parameters"]
    extra = set(environment) - CONFIG_VARIABLES
    assert extra == {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"}
    assert environment["POWERTOOLS_SERVICE_NAME"] == package
    assert environment["POWERTOOLS_METRICS_NAMESPACE"] == METRICS_NAMESPACE
    values = {
        name: str(parameters[value["Ref"]]["Default"])
        if isinstance(value, dict) and value.get("Ref") in parameters
        else f"resource-{name.lower()}"
        for name, value in environment.items()
    }
    settings = Settings.from_env(values)
    assert settings.media_table == "resource-media_table"
    assert settings.uploads_prefix == parameters["UploadsPrefix"]["Default"]
    assert settings.event_timezone == parameters["EventTimezone"]["Default"]
    assert settings.graph_api_url == parameters["GraphApiUrl"]["Default"]
    assert ",".join(settings.media_hosts) == parameters["MediaHosts"]["Default"]


def test_only_ingest_and_refresh_know_the_token_secret(template: dict[str, Any]) -> None:
    """GIVEN the functions WHEN their environments are compared THEN serve,
    which never needs the token, is not told where it lives."""
    holders = {
        function for function in FUNCTIONS if "TOKEN_SECRET_ID" in _environment(template, function)
    }
    assert holders == {"IngestFunction", "RefreshFunction"}


# ------------------------------------------------------- least privilege


def test_no_wildcards_and_no_deletes_in_any_role(template: dict[str, Any]) -> None:
    """GIVEN every IAM role WHEN its statements are read THEN none allows "*"
    actions or resources, a whole service, or deleting data."""
    for role in _resources(template, "AWS::IAM::Role"):
        for statement in _statements(template, role):
            assert statement["Effect"] == "Allow"
            for action in _listed(statement["Action"]):
                assert "*" not in action, (role, action)
                assert not re.search(r"Delete|DeleteItem|DeleteObject", action), (role, action)
            for resource in _listed(statement["Resource"]):
                assert resource != "*", role


def test_serve_reads_only_the_table_and_two_prefixes(template: dict[str, Any]) -> None:
    """GIVEN the serve role WHEN its grants are listed THEN it can query the
    table, get only uploads/ and instagram/ objects and list only uploads/;
    nothing else."""
    statements = _statements(template, _role_of(template, "ServeFunction"))
    actions = {action for statement in statements for action in _listed(statement["Action"])}
    assert actions == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "dynamodb:Query",
        "dynamodb:GetItem",
        "s3:GetObject",
        "s3:ListBucket",
    }
    by_action = {
        action: statement for statement in statements for action in _listed(statement["Action"])
    }
    assert by_action["dynamodb:Query"]["Resource"] == {"Fn::GetAtt": ["MediaTable", "Arn"]}
    assert _listed(by_action["s3:GetObject"]["Resource"]) == [
        {"Fn::Sub": "${MediaBucket.Arn}/${UploadsPrefix}*"},
        {"Fn::Sub": "${MediaBucket.Arn}/instagram/*"},
    ]
    listing = by_action["s3:ListBucket"]
    assert listing["Resource"] == {"Fn::GetAtt": ["MediaBucket", "Arn"]}
    assert listing["Condition"]["StringLike"]["s3:prefix"] == {"Fn::Sub": "${UploadsPrefix}*"}


def test_ingest_writes_table_and_mirrors_and_reads_the_secret(template: dict[str, Any]) -> None:
    """GIVEN the ingest role WHEN its grants are listed THEN it writes the
    table (transactions included), puts objects only under instagram/ and
    uploads' .thumbs/ folders, reads and lists uploads, and only reads the
    one token secret."""
    statements = _statements(template, _role_of(template, "IngestFunction"))
    grants = {
        action: statement["Resource"]
        for statement in statements
        for action in _listed(statement["Action"])
    }
    table = {"Fn::GetAtt": ["MediaTable", "Arn"]}
    for action in ("PutItem", "UpdateItem", "ConditionCheckItem", "GetItem", "Query"):
        assert grants[f"dynamodb:{action}"] == table
    assert _listed(grants["s3:PutObject"]) == [
        {"Fn::Sub": "${MediaBucket.Arn}/instagram/*"},
        {"Fn::Sub": "${MediaBucket.Arn}/${UploadsPrefix}*/.thumbs/*"},
    ]
    # Uploads are read (for their renditions) but never written outside .thumbs/.
    assert grants["s3:GetObject"] == {"Fn::Sub": "${MediaBucket.Arn}/${UploadsPrefix}*"}
    listing = next(s for s in statements if "s3:ListBucket" in _listed(s["Action"]))
    assert listing["Resource"] == {"Fn::GetAtt": ["MediaBucket", "Arn"]}
    assert listing["Condition"]["StringLike"]["s3:prefix"] == {"Fn::Sub": "${UploadsPrefix}*"}
    assert grants["secretsmanager:GetSecretValue"] == {"Ref": "TokenSecret"}
    assert not any(action.startswith("secretsmanager:Put") for action in grants)


def test_refresh_holds_exactly_the_rotation_permissions(template: dict[str, Any]) -> None:
    """GIVEN the refresh role WHEN its Secrets Manager grants are listed THEN
    they are the four rotation actions, on the token secret only."""
    statements = _statements(template, _role_of(template, "RefreshFunction"))
    secret_statements = [s for s in statements if _listed(s["Action"])[0].startswith("secret")]
    assert len(secret_statements) == 1
    assert set(secret_statements[0]["Action"]) == {
        "secretsmanager:DescribeSecret",
        "secretsmanager:GetSecretValue",
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecretVersionStage",
    }
    assert secret_statements[0]["Resource"] == {"Ref": "TokenSecret"}
    assert not any(
        action.startswith(("dynamodb:", "s3:"))
        for statement in statements
        for action in _listed(statement["Action"])
    )


# ------------------------------------------------------------------ data


def test_table_matches_the_models_and_is_kept(template: dict[str, Any]) -> None:
    """GIVEN the table WHEN compared with shared.models THEN the keys match,
    and it is on-demand, recoverable, encrypted and survives stack deletion."""
    table = template["Resources"]["MediaTable"]
    properties = table["Properties"]
    keys = {key["KeyType"]: key["AttributeName"] for key in properties["KeySchema"]}
    assert keys == {"HASH": MediaItem.pk.attr_name, "RANGE": MediaItem.sk.attr_name}
    assert {a["AttributeType"] for a in properties["AttributeDefinitions"]} == {"S"}
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert properties["SSESpecification"]["SSEEnabled"] is True
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"


def test_bucket_is_private_encrypted_versioned_and_tls_only(template: dict[str, Any]) -> None:
    """GIVEN the media bucket WHEN its settings are read THEN all public access
    is blocked, ACLs are off, objects are encrypted and versioned with old
    versions expiring, and a policy refuses plain HTTP."""
    bucket = template["Resources"]["MediaBucket"]
    properties = bucket["Properties"]
    assert set(properties["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(properties["PublicAccessBlockConfiguration"]) == 4
    assert properties["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert properties["VersioningConfiguration"]["Status"] == "Enabled"
    rules = properties["LifecycleConfiguration"]["Rules"]
    assert any("NoncurrentVersionExpiration" in rule for rule in rules)
    assert bucket["DeletionPolicy"] == "Retain"
    assert "CorsConfiguration" not in properties  # images load through <img>, no CORS
    (policy,) = _resources(template, "AWS::S3::BucketPolicy").values()
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_token_rotates_monthly_through_refresh(template: dict[str, Any]) -> None:
    """GIVEN the token secret WHEN its rotation is read THEN refresh rotates it
    about every 30 days, not on stack updates, and only Secrets Manager acting
    for this secret may invoke refresh."""
    (schedule,) = _resources(template, "AWS::SecretsManager::RotationSchedule").values()
    properties = schedule["Properties"]
    assert properties["SecretId"] == {"Ref": "TokenSecret"}
    assert properties["RotationLambdaARN"] == {"Fn::GetAtt": ["RefreshFunction", "Arn"]}
    assert properties["RotateImmediatelyOnUpdate"] is False
    assert properties["RotationRules"]["ScheduleExpression"] == "rate(30 days)"
    permission = template["Resources"][schedule["DependsOn"]]
    assert permission["Type"] == "AWS::Lambda::Permission"
    assert permission["Properties"]["Principal"] == "secretsmanager.amazonaws.com"
    assert permission["Properties"]["SourceArn"] == {"Ref": "TokenSecret"}
    assert "SecretString" not in template["Resources"]["TokenSecret"]["Properties"]


# ---------------------------------------------------- schedule, failures


def test_ingest_schedule_retries_and_dead_letters(template: dict[str, Any]) -> None:
    """GIVEN ingest WHEN scheduled THEN EventBridge Scheduler sends {} at the
    configured rate with retries and a dead-letter queue, failed runs go to
    the same queue, and reserved concurrency can be lifted."""
    properties = template["Resources"]["IngestFunction"]["Properties"]
    (event,) = properties["Events"].values()
    assert event["Type"] == "ScheduleV2"
    schedule = event["Properties"]
    assert schedule["ScheduleExpression"] == {"Ref": "IngestSchedule"}
    assert template["Parameters"]["IngestSchedule"]["Default"] == "rate(15 minutes)"
    assert schedule["Input"] == "{}"
    assert schedule["OmitName"] is True
    assert schedule["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    queue = {"Fn::GetAtt": ["FailedInvocationsQueue", "Arn"]}
    assert schedule["DeadLetterConfig"]["Arn"] == queue
    for function in ("IngestFunction", "RefreshFunction"):
        config = template["Resources"][function]["Properties"]["EventInvokeConfig"]
        assert config["DestinationConfig"]["OnFailure"] == {"Type": "SQS", "Destination": queue}
    assert properties["ReservedConcurrentExecutions"] == {
        "Fn::If": [
            "HasIngestReservedConcurrency",
            {"Ref": "IngestReservedConcurrency"},
            {"Ref": "AWS::NoValue"},
        ]
    }
    assert template["Parameters"]["IngestReservedConcurrency"]["Default"] == 1


# ------------------------------------------------------------------- web


def test_gallery_route_is_throttled_and_cdn_honours_the_origin(template: dict[str, Any]) -> None:
    """GIVEN the web tier WHEN read THEN /g/{event_id} reaches serve through a
    throttled HTTP API, and the optional CloudFront takes its TTLs from the
    origin's Cache-Control, keyed on ?format only."""
    (event,) = template["Resources"]["ServeFunction"]["Properties"]["Events"].values()
    assert event["Type"] == "HttpApi"
    assert event["Properties"]["Path"] == "/g/{event_id}"
    api = template["Resources"]["GalleryApi"]["Properties"]
    assert set(api["DefaultRouteSettings"]) == {"ThrottlingRateLimit", "ThrottlingBurstLimit"}
    cache_policy = template["Resources"]["GalleryCachePolicy"]
    config = cache_policy["Properties"]["CachePolicyConfig"]
    assert cache_policy["Condition"] == "UseCloudFront"
    assert config["MinTTL"] == config["DefaultTTL"] == 0
    key = config["ParametersInCacheKeyAndForwardedToOrigin"]
    assert key["QueryStringsConfig"] == {
        "QueryStringBehavior": "whitelist",
        "QueryStrings": ["format"],
    }
    assert key["CookiesConfig"]["CookieBehavior"] == "none"


# ---------------------------------------------------------------- alarms


def test_alarms_cover_the_failure_modes_and_notify(template: dict[str, Any]) -> None:
    """GIVEN the alarms WHEN listed THEN each required failure mode has one,
    and every alarm notifies the alarm topic."""
    alarms = _resources(template, "AWS::CloudWatch::Alarm").values()
    watched = set()
    for alarm in alarms:
        properties = alarm["Properties"]
        assert properties["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        assert properties["TreatMissingData"] in {"notBreaching", "breaching"}
        if "MetricName" in properties:
            watched.add((properties["Namespace"], properties["MetricName"]))
        for query in properties.get("Metrics", []):
            if "MetricStat" in query:
                metric = query["MetricStat"]["Metric"]
                watched.add((metric["Namespace"], metric["MetricName"]))
    assert watched >= {
        ("AWS/Lambda", "Errors"),
        (METRICS_NAMESPACE, "IngestConsecutiveFailures"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        (METRICS_NAMESPACE, "TokenDaysLeft"),
        (METRICS_NAMESPACE, "RotationFailed"),
        ("AWS/ApiGateway", "5xx"),
        ("AWS/ApiGateway", "Latency"),
    }
    token = template["Resources"]["TokenExpiryAlarm"]["Properties"]
    assert token["Threshold"] == 14
    assert token["ComparisonOperator"] == "LessThanOrEqualToThreshold"
    latency = template["Resources"]["ServeLatencyAlarm"]["Properties"]
    assert latency["ExtendedStatistic"] == "p95"


def test_custom_metric_alarms_watch_what_the_code_emits(template: dict[str, Any]) -> None:
    """GIVEN an alarm on a SailJadaGallery metric WHEN the emitting service's
    code is read THEN it names that metric, and the alarm's service dimension
    is that service (Powertools' default dimension)."""
    for name, alarm in _resources(template, "AWS::CloudWatch::Alarm").items():
        properties = alarm["Properties"]
        if properties.get("Namespace") != METRICS_NAMESPACE:
            continue
        (dimension,) = properties["Dimensions"]
        assert dimension["Name"] == "service", name
        service = dimension["Value"]
        assert service in FUNCTIONS.values(), name
        assert properties["MetricName"] in set(_string_literals(service)), name


def test_every_log_group_has_retention(template: dict[str, Any]) -> None:
    """GIVEN the stack's log groups WHEN read THEN each has a retention."""
    groups = _resources(template, "AWS::Logs::LogGroup")
    assert len(groups) == 4  # three functions and the API's access log
    for group in groups.values():
        assert "RetentionInDays" in group["Properties"]


# ------------------------------------------------------ checkov, outputs


def test_every_checkov_skip_is_justified(template: dict[str, Any]) -> None:
    """GIVEN the checkov skips in resource Metadata WHEN read THEN each names
    a check and says why it does not apply."""
    skips = [
        skip
        for resource in template["Resources"].values()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips
    for skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"])
        assert len(skip["comment"].split()) >= 8, skip["id"]


def test_outputs_give_operators_what_they_need(template: dict[str, Any]) -> None:
    """GIVEN a deployed stack WHEN its outputs are read THEN they give the
    gallery URL, the table, bucket and secret, and the function names."""
    assert set(template["Outputs"]) >= {
        "GalleryBaseUrl",
        "MediaTableName",
        "MediaBucketName",
        "TokenSecretArn",
        "IngestFunctionName",
        "ServeFunctionName",
        "RefreshFunctionName",
    }
