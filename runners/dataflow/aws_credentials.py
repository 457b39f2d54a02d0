"""AWS keys for voicelake's Dataflow workers, read from Google Secret Manager: a boto3 credential_process.

Dataflow workers run on Google Cloud with a Google service account and no AWS identity, while the
job reads S3 and Kinesis Video Streams through boto3's standard credential chain. The worker image
(runners/dataflow/Dockerfile) writes an AWS config file whose ``credential_process`` is this script,
so every boto3 client asks it for keys when it first needs them. The keys never appear in code, in
the image, in pipeline options (which Dataflow shows in its console) or in logs.

    python3 aws_credentials.py projects/PROJECT/secrets/voicelake-aws/versions/latest

The secret holds JSON ``{"AccessKeyId": "...", "SecretAccessKey": "..."}`` (plus ``"SessionToken"``
for temporary keys); the workers' service account needs ``roles/secretmanager.secretAccessor`` on it.
The script prints the credential_process answer (``"Version": 1``) on stdout; on failure it exits 1
with one line on stderr, which boto3 reports as ``CredentialRetrievalError``. Only the standard
library is used, so the script runs in any Python on the image.
"""
from __future__ import annotations

import base64
import json
import os
import sys
import urllib.request

# GCE_METADATA_HOST is the override Google's own client libraries honour; the Secret Manager URL can
# point at a Private Service Connect endpoint.
METADATA_HOST = os.environ.get("GCE_METADATA_HOST", "metadata.google.internal")
SECRET_MANAGER_URL = os.environ.get("VOICELAKE_SECRET_MANAGER_URL", "https://secretmanager.googleapis.com")
TIMEOUT_S = 10


def _get_json(url: str, headers: dict[str, str]) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S) as r:
        return json.load(r)


def access_token() -> str:
    """An OAuth token of the worker's service account, from the VM's metadata server."""
    url = f"http://{METADATA_HOST}/computeMetadata/v1/instance/service-accounts/default/token"
    return _get_json(url, {"Metadata-Flavor": "Google"})["access_token"]


def secret_payload(version: str, token: str) -> bytes:
    reply = _get_json(f"{SECRET_MANAGER_URL}/v1/{version}:access", {"Authorization": f"Bearer {token}"})
    return base64.b64decode(reply["payload"]["data"])


def credential_process_answer(payload: bytes) -> dict:
    """The secret's keys in the shape boto3's credential_process expects."""
    keys = json.loads(payload)
    missing = [k for k in ("AccessKeyId", "SecretAccessKey") if not keys.get(k)]
    if missing:
        raise ValueError(f"the secret has no {' or '.join(missing)}")
    answer = {"Version": 1, "AccessKeyId": keys["AccessKeyId"], "SecretAccessKey": keys["SecretAccessKey"]}
    if keys.get("SessionToken"):
        answer["SessionToken"] = keys["SessionToken"]
    return answer


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].startswith("projects/"):
        print("usage: aws_credentials.py projects/PROJECT/secrets/NAME/versions/VERSION", file=sys.stderr)
        return 2
    try:
        answer = credential_process_answer(secret_payload(argv[0], access_token()))
    except Exception as exc:  # noqa: BLE001 - one line for boto3's error, never the secret itself
        print(f"aws_credentials: cannot read AWS keys from {argv[0]}: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return 1
    json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
