"""Webhook rules: the URLs endpoints may have and the retry schedule operators are promised."""

from datetime import datetime, timedelta, timezone

import pytest

from tierup.domain.webhooks import MAX_ATTEMPTS, next_attempt_at, private_address, should_disable, url_problem

START = datetime(2026, 3, 1, 2, 0, tzinfo=timezone.utc)


def schedule() -> list[timedelta]:
    """Every attempt's time after the first when each one fails at once."""
    times, now, made = [timedelta(0)], START, 1
    while (then := next_attempt_at(START, made, now)) is not None:
        now, made = then, made + 1
        times.append(now - START)
    return times


def test_retries_start_within_seconds_grow_and_end_a_day_after_the_first_attempt():
    assert schedule() == [timedelta(0), timedelta(seconds=5), timedelta(seconds=65), timedelta(minutes=6, seconds=5),
                          timedelta(minutes=36, seconds=5), timedelta(hours=2, minutes=36, seconds=5),
                          timedelta(hours=7, minutes=36, seconds=5), timedelta(hours=17, minutes=36, seconds=5),
                          timedelta(hours=24)]


def test_a_late_attempt_keeps_to_the_window():
    # An attempt made late (the server was down) is followed by the next delay, never past the day.
    assert next_attempt_at(START, 1, START + timedelta(hours=1)) == START + timedelta(hours=1, seconds=5)
    assert next_attempt_at(START, 3, START + timedelta(hours=23, minutes=58)) == START + timedelta(hours=24)
    assert next_attempt_at(START, 9, START + timedelta(hours=25)) is None


def test_an_endpoint_is_disabled_after_a_day_of_failures():
    assert not should_disable(None, START)
    assert not should_disable(START, START + timedelta(hours=23, minutes=59))
    assert should_disable(START, START + timedelta(hours=24))


@pytest.mark.parametrize("url", ["https://shop.example.com/hooks", "https://shop.example.com:8443/h?x=1",
                                 "https://[2001:4860:4860::8888]/hooks", "https://8.8.8.8/hooks",
                                 "https://商店.example/hooks"])
def test_https_urls_are_taken(url):
    assert url_problem(url, allow_http=False, allow_private=False) is None


def test_plain_http_only_outside_production():
    assert url_problem("http://127.0.0.1:9000/hooks", allow_http=True, allow_private=True) is None
    assert url_problem("http://127.0.0.1:9000/hooks", allow_http=False, allow_private=True) == (
        "url must use https:// in production")
    assert url_problem("ftp://x/hooks", allow_http=False, allow_private=True) == "url must start with https://"


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.5", "172.16.3.4", "192.168.1.1", "169.254.169.254",
                                  "100.64.0.1", "0.0.0.0", "[::1]", "[fc00::1]", "[fe80::1]", "[::ffff:10.0.0.1]",
                                  "localhost", "api.localhost", "LOCALHOST.", "224.0.0.1", "127.1", "2130706433",
                                  "0x7f.0.0.1", "012.0.0.1"])
def test_a_private_address_is_refused_unless_allowed(host):
    url = f"https://{host}/hooks"
    assert url_problem(url, allow_http=False, allow_private=False) == (
        f"url points to a private address ({host.strip('[]').lower()}); set TIERUP_WEBHOOK_PRIVATE_TARGETS=1 to "
        "deliver to your own network")
    assert url_problem(url, allow_http=False, allow_private=True) is None


@pytest.mark.parametrize("address, private", [
    ("8.8.8.8", False), ("2001:4860:4860::8888", False), ("::ffff:8.8.8.8", False), ("64:ff9b::808:808", False),
    ("10.1.2.3", True), ("fe80::1%eth0", True), ("::ffff:127.0.0.1", True), ("239.1.1.1", True),
    ("::7f00:1", True), ("64:ff9b::a9fe:a9fe", True), ("2002:7f00:1::1", True), ("fec0::1", True),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", True)])
def test_an_address_is_private_unless_on_the_public_internet(address, private):
    assert private_address(address) is private


def test_no_message_gets_more_attempts_than_the_query_cost_counts():
    assert len(schedule()) == MAX_ATTEMPTS
