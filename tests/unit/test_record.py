"""The typed record: what it masks, and how it reads a file back."""

from __future__ import annotations

import json

import pytest

from provisioner import recordread
from provisioner.record import SCHEMA, Callback, Delivery, Record, mask_url, url_secrets


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("https://platform.example/cb", "https://platform.example/cb"),
        ("https://user:pa55@platform.example:8443/cb", "https://***@platform.example:8443/cb"),
        ("https://token@platform.example/cb", "https://***@platform.example/cb"),
        ("http://h/cb?sig=abc&vm=42", "http://h/cb?sig=***&vm=***"),
        ("http://[::1]:8080/cb?k=v", "http://[::1]:8080/cb?k=***"),
        ("http://h/cb#fragment", "http://h/cb"),
        ("http://h/cb?S3CRETKEY", "http://h/cb?***"),
        ("http://[::1", "***"),
        (None, None),
    ],
)
def test_a_url_is_masked_to_where_it_goes_without_how_it_authenticates(url: str | None, masked: str | None) -> None:
    assert mask_url(url) == masked


def test_the_secrets_of_a_url_are_its_password_and_query_values_decoded_and_as_written() -> None:
    assert url_secrets("https://platform:pa55word@h/cb?sig=KEY-0123&x=1&key=Zm9v%2BYmFy") == [
        "pa55word",
        "KEY-0123",
        "Zm9v+YmFy",
        "Zm9v%2BYmFy",  # as an error quoting the URL shows it
    ]
    assert url_secrets("https://h/cb") == []


def test_a_record_written_and_read_back_is_the_same_record() -> None:
    record = Record(state="ready", port=8008)
    record.callbacks.append(Callback("complete", {"status": "init_completed"}, delivery=Delivery.DELIVERED))
    again = recordread.parse(json.loads(json.dumps(record.to_json())), lambda settings: True)
    assert again.to_json() == record.to_json()
    assert again.to_json()["schema"] == SCHEMA
