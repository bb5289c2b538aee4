"""Pelican settings for working on the site locally (``invoke build`` / ``invoke serve``)."""

from __future__ import annotations

AUTHOR = "The kblog authors"
SITENAME = "kblog: kernel modules, run for real"
SITESUBTITLE = "Linux kernel modules, one episode at a time; every command on the page really ran"
SITEURL = ""

PATH = "content"
PAGE_PATHS = ["pages"]
ARTICLE_EXCLUDES = ["pages"]
STATIC_PATHS = ["images"]
THEME = "theme"

TIMEZONE = "UTC"
DEFAULT_LANG = "en"
DEFAULT_DATE_FORMAT = "%-d %B %Y"

# Series an article may join with ``Series: <slug>``; the value is the display name.
SERIES = {"kmod": "Writing Linux kernel modules"}

# Hidden files and directories (an editor's lock or swap file) are no content.
# Pelican matches these against base names: its own default, "**/.*", never matches one.
IGNORE_FILES = [".*"]
PLUGIN_PATHS = ["plugins"]
PLUGINS = ["kblog_series", "kblog_snippets"]

MARKDOWN = {
    "extension_configs": {
        # extra = abbr, attr_list, def_list, fenced_code, footnotes, md_in_html, tables
        "markdown.extensions.extra": {"footnotes": {"BACKLINK_TITLE": "Back to the text"}},
        "markdown.extensions.codehilite": {"css_class": "highlight", "guess_lang": False},
        "markdown.extensions.toc": {"permalink": "#", "permalink_title": "Link to this section"},
        "markdown.extensions.meta": {},
    },
    "output_format": "html5",
}

# Site-absolute URLs everywhere: the 404 page is served at any depth.
RELATIVE_URLS = False

# Pages: articles, archives, tags, categories and a 404; no per-author pages (one author).
# "report": what ran where, when and how long (kblog/report.py), linked from the footer.
DIRECT_TEMPLATES = ["index", "archives", "tags", "categories", "404", "report"]
REPORT_URL = REPORT_SAVE_AS = "report.html"
ARCHIVES_URL = ARCHIVES_SAVE_AS = "archives.html"
TAGS_URL = TAGS_SAVE_AS = "tags.html"
CATEGORIES_URL = CATEGORIES_SAVE_AS = "categories.html"
AUTHOR_SAVE_AS = ""
AUTHORS_SAVE_AS = ""
DEFAULT_PAGINATION = False

# Atom only: one feed for everything, one per category and per tag.
FEED_DOMAIN = SITEURL
FEED_ALL_ATOM = "feeds/all.atom.xml"
CATEGORY_FEED_ATOM = "feeds/category-{slug}.atom.xml"
TAG_FEED_ATOM = "feeds/tag-{slug}.atom.xml"
AUTHOR_FEED_ATOM = None
AUTHOR_FEED_RSS = None
TRANSLATION_FEED_ATOM = None

DELETE_OUTPUT_DIRECTORY = True

# Where a file of this repository is read on the web, its path appended: the provenance
# line of a post that builds the kernel links its patch there. Empty: no links.
KBLOG_REPOSITORY_URL = ""

# Every post runs on every kernel runner/config.py names (KBLOG_KERNELS narrows it).
