import time
import uuid

from controlplane.ids import uuid7


def test_uuid7_has_version_and_variant_and_embeds_the_time():
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000

    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert before <= value.int >> 80 <= after


def test_uuid7_orders_by_creation_time_across_milliseconds():
    first = uuid7()
    time.sleep(0.002)
    second = uuid7()

    assert first < second
    assert len({uuid7() for _ in range(10_000)}) == 10_000
