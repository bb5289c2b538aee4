"""Pelican settings for the published site: pelicanconf.py plus absolute URLs and feeds.

The public address comes from the KBLOG_SITEURL environment variable
(for example ``https://blog.example.org``); without it links stay site-absolute.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pelicanconf import *  # noqa: F403

SITEURL = os.environ.get("KBLOG_SITEURL", "").rstrip("/")
RELATIVE_URLS = False
FEED_DOMAIN = SITEURL
DELETE_OUTPUT_DIRECTORY = True
