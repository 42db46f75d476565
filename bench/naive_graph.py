"""COMPARISON BASELINE ONLY — not product code.

A deliberately naive Graph API media source, the way many Instagram feed
plugins read an account: list the media without field expansion, then, for
every carousel, ask for its children's ids and fetch each child separately.
The benchmark runs the same backfill through it and through the product's
:class:`shared.graph.GraphClient` (children by ``children{...}`` field
expansion) and reports the ratio of Graph calls.

It implements the ingest service's ``MediaSource`` protocol, so the rest of
the backfill (range reads, hashing, conditional writes) is the product's own
code in both runs. It has no retries, no throttling handling and no token
redaction, which is fine for a local fake and wrong anywhere else.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import requests

from shared.graph import MediaPage
from shared.media import MalformedPostError, Post

LIST_FIELDS = "id,caption,media_type,media_product_type,media_url,permalink,thumbnail_url,timestamp"
CHILD_FIELDS = "id,media_type,media_url,thumbnail_url"
TIMEOUT = (3.05, 10.0)


class NaiveGraphClient:
    """Lists media, then makes one call per carousel and one per carousel child.

    Parameters
    ----------
    graph_url
        The versioned API base (``GRAPH_API_URL``).
    token
        The access token, sent as a bearer header.
    page_limit
        ``limit`` of each media page (the same as the product's, so only the
        carousel strategy differs).
    """

    def __init__(self, graph_url: str, token: str, *, page_limit: int = 100) -> None:
        self._base = graph_url.rstrip("/")
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {token}"
        self._page_limit = page_limit
        self.calls = 0

    def media_pages(self) -> Iterator[MediaPage]:
        """Yield the account's media pages, each carousel completed child by child."""
        url: str | None = f"{self._base}/me/media"
        params: dict[str, str] | None = {"fields": LIST_FIELDS, "limit": str(self._page_limit)}
        while url is not None:
            body = self._get(url, params)
            posts: list[Post] = []
            skipped = 0
            for data in body.get("data", []):
                if data.get("media_type") == "CAROUSEL_ALBUM":
                    data = {**data, "children": {"data": self._children(str(data["id"]))}}
                try:
                    posts.append(Post.from_graph(data))
                except MalformedPostError:
                    skipped += 1
            url = body.get("paging", {}).get("next")
            params = None
            yield MediaPage(posts=tuple(posts), skipped=skipped, has_next=url is not None)

    def _children(self, media_id: str) -> list[dict[str, Any]]:
        listing = self._get(f"{self._base}/{media_id}/children", {"fields": "id"})
        return [
            self._get(f"{self._base}/{child['id']}", {"fields": CHILD_FIELDS})
            for child in listing.get("data", [])
        ]

    def _get(self, url: str, params: dict[str, str] | None) -> dict[str, Any]:
        self.calls += 1
        response = self._session.get(url, params=params, timeout=TIMEOUT)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body
