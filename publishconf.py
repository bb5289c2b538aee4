"""Pelican settings for the published site: pelicanconf.py plus absolute URLs, a sitemap,
robots.txt, and where `invoke publish` deploys.

Every publish setting is read here, from the environment, and nowhere else:

    KBLOG_PUBLISH_SITEURL  the public address, with its scheme: https://blog.example.org
    KBLOG_PUBLISH_RSYNC    deploy with rsync --delete to a directory or user@host:path
    KBLOG_PUBLISH_GIT      or commit the site to a branch of this git repository (a URL or path)
    KBLOG_PUBLISH_BRANCH   that branch (default gh-pages)
    KBLOG_PUBLISH_CNAME    a CNAME file for GitHub Pages (git target only)
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pelicanconf import *  # noqa: F403
from pelicanconf import DIRECT_TEMPLATES, PLUGINS

SITEURL = os.environ.get("KBLOG_PUBLISH_SITEURL", "").strip().rstrip("/")
RELATIVE_URLS = False
FEED_DOMAIN = SITEURL
DELETE_OUTPUT_DIRECTORY = True

# The namespace plugin from PyPI (pelican-sitemap), named in full so that a plugin
# called "sitemap" elsewhere on the path cannot stand in for it.
PLUGINS = [*PLUGINS, "pelican.plugins.sitemap"]
SITEMAP = {
    "format": "xml",
    # Not pages anyone should land on from a search engine.
    "exclude": [r"^404\.html$", r"^robots\.txt$"],
}

# robots.txt is a theme template, so it always names this build's sitemap.
DIRECT_TEMPLATES = [*DIRECT_TEMPLATES, "robots"]
ROBOTS_SAVE_AS = "robots.txt"

KBLOG_PUBLISH_RSYNC = os.environ.get("KBLOG_PUBLISH_RSYNC", "").strip()
KBLOG_PUBLISH_GIT = os.environ.get("KBLOG_PUBLISH_GIT", "").strip()
KBLOG_PUBLISH_BRANCH = os.environ.get("KBLOG_PUBLISH_BRANCH", "").strip() or "gh-pages"
KBLOG_PUBLISH_CNAME = os.environ.get("KBLOG_PUBLISH_CNAME", "").strip()
