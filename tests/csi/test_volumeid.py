"""The volume-ID codec: round trips, canonical form, and refusal of crafted IDs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openfiles_csi.volumeid import MAX_LENGTH, VolumeIdError, VolumeRef, decode, encode

REF = VolumeRef(
    bucket="my-bucket",
    prefix="team/pvc-0f1e2d3c",
    endpoint="http://127.0.0.1:9000",
    region="us-east-1",
    delete_data=True,
)


def test_round_trip_and_stable() -> None:
    text = encode(REF)
    assert text == "of1,d,http://127.0.0.1:9000,us-east-1,my-bucket,team/pvc-0f1e2d3c"
    assert encode(REF) == text
    assert decode(text) == REF
    assert REF.url == "s3://my-bucket/team/pvc-0f1e2d3c"


def test_gcs_and_azure_ids_are_version_2() -> None:
    az = VolumeRef(bucket="container", prefix="team/pvc-1", endpoint="http://127.0.0.1:10000/acct",
                   scheme="az", account="acct")
    assert encode(az) == "of2,k,az,http://127.0.0.1:10000/acct,acct,container,team/pvc-1"
    gs = VolumeRef(bucket="my_bucket", prefix="pvc-1", scheme="gs")
    assert encode(gs) == "of2,k,gs,,,my_bucket,pvc-1"
    for ref in (az, gs):
        assert decode(encode(ref)) == ref
    assert az.url == "az://container/team/pvc-1" and gs.url == "gs://my_bucket/pvc-1"


def test_defaults_round_trip() -> None:
    ref = VolumeRef(bucket="abc", prefix="v")
    assert decode(encode(ref)) == ref


@pytest.mark.parametrize(
    "text",
    [
        "",
        "reallyfakevolumeid",
        "of2,k,,,bucket,vol",
        "of1,x,,,bucket,vol",
        "of1,k,,,bucket,../other",
        "of1,k,,,bucket,a/../../b",
        "of1,k,,,bucket,a/%2E%2E/b",
        "of1,k,,,bucket,/abs",
        "of1,k,,,bucket,a//b",
        "of1,k,,,bucket,",
        "of1,k,,,Bad_Bucket,vol",
        "of1,k,,,bucket,vol,extra",
        "of1,k,ftp://host,,bucket,vol",
        "of1,k,http://user:pw@host,,bucket,vol",
        "of1,k,http://host?x=1,,bucket,vol",
        "of1,k,,US East,bucket,vol",
        "of1,k,,,bucket,a%00b",
        "of1,k,,,bucket,a\\b",
        "of1,k,,,bucket,v%6Fl",  # not canonical: 'o' needs no escape
        "of1,k,,,bucket," + "x" * 200,
        "of2,k,az,,,container,vol",  # no account
        "of2,k,gs,,acct,bucket,vol",  # an account for gs
        "of2,k,s3,,,bucket,vol",  # s3 is version 1
        "of2,k,file,,,bucket,vol",
        "of2,k,az,,acct,con--tainer,vol",
        "of2,k,az,,acct,container",
    ],
)
def test_decode_refuses(text: str) -> None:
    with pytest.raises(VolumeIdError):
        decode(text)


def test_no_credentials_in_endpoint() -> None:
    with pytest.raises(VolumeIdError, match="credentials"):
        encode(VolumeRef(bucket="abc", prefix="v", endpoint="https://AKIA:secret@s3.example"))


def test_too_long_is_refused_with_a_reason() -> None:
    with pytest.raises(VolumeIdError, match="128"):
        encode(VolumeRef(bucket="b" * 63, prefix="p" * 70, endpoint="https://s3.example.com"))


def test_separator_in_prefix_is_escaped() -> None:
    ref = VolumeRef(bucket="abc", prefix="a,b/c d")
    text = encode(ref)
    assert text.count(",") == 5
    assert decode(text) == ref


segment = st.text(
    alphabet=st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="/\\"),
    min_size=1,
    max_size=8,
).filter(lambda s: s not in {".", ".."})


@given(st.lists(segment, min_size=1, max_size=3), st.booleans())
def test_round_trip_property(segments: list[str], delete: bool) -> None:
    ref = VolumeRef(bucket="bucket-1", prefix="/".join(segments), delete_data=delete)
    try:
        text = encode(ref)
    except VolumeIdError:
        return  # only allowed when too long
    assert len(text.encode()) <= MAX_LENGTH
    assert decode(text) == ref
