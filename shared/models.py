"""PynamoDB models of the single ``MEDIA_TABLE``.

Key design (``pk`` hash, ``sk`` range, both strings):

===============  ==============================  ===============================
item             pk                              sk
===============  ==============================  ===============================
Instagram post   ``MEDIA``                       ``<taken_at UTC Z>#<media id>``
ingest state     ``META``                        ``state#ingest``
event record     ``META``                        ``event#<event_id>``
===============  ==============================  ===============================

ISO 8601 UTC strings sort in time order, so one Query with ``sk BETWEEN``
returns an event's window oldest first. All posts share one partition: one
account publishes a few thousand posts at most and reads are CDN-cached, so a
single partition is far from DynamoDB's per-partition limits, and any window
(across midnight, month or year) stays one Query. The ``META`` partition is
small enough to read whole in one Query.
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import (
    DiscriminatorAttribute,
    JSONAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.models import Model

from shared.config import Settings

MEDIA_PARTITION = "MEDIA"
META_PARTITION = "META"
STATE_SORT_KEY = "state#ingest"
EVENT_SORT_PREFIX = "event#"


class _TableModel(Model):
    class Meta:
        table_name = "unbound"  # set by bind_models() from MEDIA_TABLE
        region = "us-east-1"
        connect_timeout_seconds = 2
        read_timeout_seconds = 5
        max_retry_attempts = 3

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class MediaItem(_TableModel):
    """One Instagram post (see :class:`shared.media.Post`)."""

    class Meta(_TableModel.Meta):
        pass

    media_id = UnicodeAttribute()
    taken_at = UnicodeAttribute()
    media_type = UnicodeAttribute(null=True)
    media_product_type = UnicodeAttribute(null=True)
    caption = UnicodeAttribute(null=True)
    permalink = UnicodeAttribute(null=True)
    media_url = UnicodeAttribute(null=True)
    thumbnail_url = UnicodeAttribute(null=True)
    children = JSONAttribute(null=True)
    mirror = JSONAttribute(null=True)
    content_hash = UnicodeAttribute()
    fetched_at = UTCDateTimeAttribute()


class MetaItem(_TableModel):
    """An item of the ``META`` partition; one Query returns all of them."""

    class Meta(_TableModel.Meta):
        pass

    kind = DiscriminatorAttribute()


class StateItem(MetaItem, discriminator="state"):
    """The ingest state (see :class:`shared.state.IngestState`)."""

    high_water_mark = UTCDateTimeAttribute(null=True)
    last_run_at = UTCDateTimeAttribute(null=True)
    last_success_at = UTCDateTimeAttribute(null=True)
    consecutive_failures = NumberAttribute(default=0)
    last_error = UnicodeAttribute(null=True)
    resume_after = UTCDateTimeAttribute(null=True)


class EventItem(MetaItem, discriminator="event"):
    """An event record (see :class:`shared.events.EventRecord`)."""

    title = UnicodeAttribute(null=True)
    start = UTCDateTimeAttribute(null=True)
    end = UTCDateTimeAttribute(null=True)


ALL_MODELS: tuple[type[_TableModel], ...] = (MediaItem, MetaItem, StateItem, EventItem)


def bind_models(settings: Settings) -> None:
    """Point every model at the configured table, region and endpoint.

    PynamoDB reads table names from class attributes; binding them at run time
    (not import time) lets tests and local mode choose the table.
    """
    models: tuple[type[Model], ...] = (_TableModel, *ALL_MODELS)
    for model in models:
        model.Meta.table_name = settings.media_table
        model.Meta.region = settings.aws_region
        model.Meta.host = settings.aws_endpoint_url
        model._connection = None


def create_table(settings: Settings, **options: Any) -> None:
    """Create the table on demand (local mode and tests; SAM creates it in AWS)."""
    bind_models(settings)
    if not MediaItem.exists():
        MediaItem.create_table(billing_mode="PAY_PER_REQUEST", wait=True, **options)
