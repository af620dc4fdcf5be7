"""Photos shoppers send on a messaging platform, fetched from the platform's own hosts.

The platform gives us a URL (Messenger, Twilio) or a file id that turns into one
(Telegram). :func:`download` fetches it only from the platform's own hosts (an allow-list per
channel, redirects checked hop by hop, credentials sent to the first host only) and stops
reading past the size limit. The bytes are then stored like a web upload by
:class:`shopcore.uploads.UploadStore` (validated, re-encoded, random name), and the bot gets
``/photo_upload`` with the ref in the message metadata.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urljoin

import aiohttp

from bot.channels.config import host_allowed, host_of
from shopcore.images import ImageRejected
from shopcore.uploads import too_large_message

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 3
DOWNLOAD_TIMEOUT_S = 30
READ_CHUNK = 64 * 1024
NOT_FETCHED = "I couldn't fetch that photo - please send it again."


def too_large(max_bytes: int) -> ImageRejected:
    return ImageRejected("too_large", too_large_message(max_bytes))


async def download(
    session: aiohttp.ClientSession,
    url: str,
    hosts: tuple[str, ...],
    max_bytes: int,
    auth: aiohttp.BasicAuth | None = None,
) -> bytes:
    """The bytes at ``url``, or ImageRejected: host not allowed, too large, or not fetched."""
    first_host = host_of(url)
    for _ in range(MAX_REDIRECTS + 1):
        if not host_allowed(url, hosts):
            logger.warning("refused photo download from %r (allowed: %s)",
                           host_of(url) or url[:80], ", ".join(hosts) or "none")
            raise ImageRejected("host_not_allowed", NOT_FETCHED)
        try:
            async with session.get(
                url, allow_redirects=False, auth=auth if host_of(url) == first_host else None,
                timeout=aiohttp.ClientTimeout(total=DOWNLOAD_TIMEOUT_S),
            ) as response:
                if response.status in (301, 302, 303, 307, 308):
                    location = response.headers.get("Location", "")
                    if not location:
                        raise ImageRejected("bad_redirect", NOT_FETCHED)
                    url = urljoin(url, location)
                    continue
                if response.status != 200:
                    logger.warning("photo download from %s answered HTTP %d",
                                   host_of(url), response.status)
                    raise ImageRejected("download_failed", NOT_FETCHED)
                if (response.content_length or 0) > max_bytes:
                    raise too_large(max_bytes)
                data = bytearray()
                async for chunk in response.content.iter_chunked(READ_CHUNK):
                    data.extend(chunk)
                    if len(data) > max_bytes:
                        raise too_large(max_bytes)
                return bytes(data)
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:  # noqa: UP041 - 3.10
            logger.warning("photo download from %s failed: %r", host_of(url), error)
            raise ImageRejected("download_failed", NOT_FETCHED) from error
    logger.warning("photo download gave up after %d redirects", MAX_REDIRECTS)
    raise ImageRejected("too_many_redirects", NOT_FETCHED)
