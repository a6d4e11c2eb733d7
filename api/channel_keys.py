"""The channel hub on the application (set by build_app when channels are wired)."""

from __future__ import annotations

from aiohttp import web

from channels.hub import ChannelHub

CHANNELS = web.AppKey("channels", ChannelHub)
