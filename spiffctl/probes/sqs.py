"""Amazon SQS: ask the queue for one attribute. Needs the optional ``spiffctl[sqs]`` extra (boto3)."""

from __future__ import annotations

from spiffctl.config.settings import Endpoint
from spiffctl.probes import Outcome, ok, permanent, transient

PERMANENT_CODES = (
    "AccessDenied",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "NonExistentQueue",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
    "InvalidAddress",
)


def check(endpoint: Endpoint, timeout: float) -> Outcome:
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
    except ImportError:
        return permanent("boto3 is not installed; install spiffctl[sqs] to check SQS queues")
    config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 0})
    try:
        client = boto3.client("sqs", config=config, region_name=_region(endpoint.url))
        client.get_queue_attributes(QueueUrl=endpoint.url, AttributeNames=["QueueArn"])
    except NoCredentialsError:
        return permanent("no AWS credentials found (AWS_ACCESS_KEY_ID / role)")
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code in PERMANENT_CODES:
            return permanent(f"{code}: {e}")
        return transient(f"{code}: {e}")
    except BotoCoreError as e:
        return transient(str(e))
    return ok("queue attributes read")


def _region(url: str) -> str | None:
    # https://sqs.<region>.amazonaws.com/<account>/<queue>
    host = url.split("://", 1)[-1].split("/", 1)[0]
    parts = host.split(".")
    return parts[1] if len(parts) > 3 and parts[0] == "sqs" else None
