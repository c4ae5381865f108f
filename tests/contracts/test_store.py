"""The stores a volume from Kubernetes may name, and what each one's Secret must hold."""

from __future__ import annotations

import json

import pytest

from openfiles_contracts.store import (
    StoreSpecError,
    StoreURL,
    check_account,
    check_secret,
    engine_env,
    parse_url,
)

KEY = json.dumps({"type": "service_account", "client_email": "sa@p.iam.gserviceaccount.com",
                  "private_key": "-----BEGIN PRIVATE KEY-----\nSECRET-PEM\n"})


@pytest.mark.parametrize(("url", "parsed"), [
    ("s3://my-bucket", StoreURL("s3", "my-bucket", "")),
    ("s3://my.bucket/a/b/", StoreURL("s3", "my.bucket", "a/b")),
    ("gs://my_bucket/team", StoreURL("gs", "my_bucket", "team")),
    ("az://container-1/x y", StoreURL("az", "container-1", "x y")),
])
def test_urls_of_the_three_stores(url: str, parsed: StoreURL) -> None:
    assert parse_url(url) == parsed
    assert parse_url(parsed.url) == parsed


@pytest.mark.parametrize(("url", "message"), [
    ("file:///data", "must start with s3://, gs:// or az://"),
    ("s3:/b", "must start with"),
    ("s3://My-Bucket", "not an S3 bucket name"),
    ("s3://b_u", "not an S3 bucket name"),  # GCS takes it, S3 does not
    ("gs://a..b", "not a GCS bucket name"),
    ("az://a--b", "not an Azure container name"),
    ("az://a.b", "not an Azure container name"),
    ("s3://bucket/a//b", "bad part ''"),
    ("gs://bucket/a/../b", "bad part '..'"),
    ("az://bucket/a\\b", "bad part"),
    ("s3://bucket/p?x=1", "query"),
    ("s3://key:secret@bucket/p", "credentials"),
])
def test_bad_urls_are_refused_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(StoreSpecError, match=message.replace("?", r"\?")):
        parse_url(url)


def test_only_az_takes_an_account_and_it_needs_one() -> None:
    check_account("az", "devstoreaccount1")
    check_account("s3", "")
    for scheme, account, message in [("az", "", "needs the storage account"),
                                     ("az", "Has-Upper", "not an Azure storage account"),
                                     ("az", "ab", "not an Azure storage account"),
                                     ("gs", "acct", "for az:// only")]:
        with pytest.raises(StoreSpecError, match=message):
            check_account(scheme, account)


@pytest.mark.parametrize(("scheme", "data"), [
    ("s3", {"accessKeyId": "AK", "secretAccessKey": "SK"}),
    ("s3", {"accessKeyId": "AK", "secretAccessKey": "SK", "sessionToken": "T"}),
    ("gs", {"serviceAccountKey": KEY}),
    ("az", {"accountKey": "bm90IGEga2V5"}),
    ("az", {"sasToken": "sv=2022-11-02&sp=rl&sig=abc%3D"}),
    ("az", {"accountName": "acct", "accountKey": "bm90IGEga2V5"}),
])
def test_complete_secrets_pass(scheme: str, data: dict[str, str]) -> None:
    check_secret(scheme, data, account="acct" if scheme == "az" else "")


@pytest.mark.parametrize(("scheme", "data", "message"), [
    ("s3", {"accessKeyId": "AK"}, "no key secretAccessKey"),
    ("s3", {}, "no key accessKeyId and secretAccessKey"),
    ("s3", {"accessKeyId": "AK", "secretAccessKey": "SK", "accountKey": "K"},
     r"keys \['accountKey'\] are not taken by a s3:// volume"),
    ("gs", {}, "no key serviceAccountKey"),
    ("gs", {"serviceAccountKey": "{SECRET-PEM"}, "not JSON"),
    ("gs", {"serviceAccountKey": "[1]"}, "not a JSON object"),
    ("gs", {"serviceAccountKey": json.dumps({"client_email": "x"})}, "has no private_key"),
    ("gs", {"serviceAccountKey": json.dumps({"client_email": "", "private_key": "",
                                             "gcs_base_url": "http://10.0.0.1"})},
     "gcs_base_url other than the volume's endpoint"),
    ("gs", {"accessKeyId": "AK", "secretAccessKey": "SK"}, "not taken by a gs:// volume"),
    ("az", {}, "no key accountKey or sasToken"),
    ("az", {"accountName": "acct"}, "no key accountKey or sasToken"),
    ("az", {"accountName": "other", "accountKey": "bm90"}, "accountName differs"),
    ("az", {"accountKey": "not base64!SECRET-PEM"}, "accountKey is not base64"),
    ("az", {"sasToken": "SECRET-PEM"}, "not a SAS token"),
])
def test_bad_secrets_are_refused_naming_the_key_never_the_value(
        scheme: str, data: dict[str, str], message: str) -> None:
    with pytest.raises(StoreSpecError, match=message) as info:
        check_secret(scheme, data, account="acct" if scheme == "az" else "")
    assert "SECRET" not in str(info.value)


def test_a_key_may_name_the_volumes_own_endpoint() -> None:
    key = json.dumps({"client_email": "", "private_key": "", "gcs_base_url": "http://gcs:4443/"})
    check_secret("gs", {"serviceAccountKey": key}, endpoint="http://gcs:4443")


def test_without_required_an_empty_secret_passes_but_a_partial_one_does_not() -> None:
    check_secret("s3", {}, required=False)
    check_secret("az", {}, account="acct", required=False)
    with pytest.raises(StoreSpecError, match="no key secretAccessKey"):
        check_secret("s3", {"accessKeyId": "AK"}, required=False)


def test_the_engine_environment_has_no_account_name() -> None:
    assert engine_env({"accountName": "acct", "accountKey": "K", "sasToken": ""}) == {
        "AZURE_STORAGE_ACCOUNT_KEY": "K"}
